"""Prepared (memory-mapped) datasets, official LR files, and their use in
training."""

import os

import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax import data
from gramjax.data import images
from gramjax.data import prepared
from gramjax.training import loop as train
from gramjax.core.errors import UserError
from tests.conftest import run_module, training_metrics


def write_images(folder, n=4, size=(40, 36), seed=0):
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = []
  for i in range(n):
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(folder / f'{i:04d}.png')
    arrays.append(arr)
  return arrays


def test_prepare_maps_exactly_the_decoded_images(tmp_path):
  arrays = write_images(tmp_path / 'src')
  manifest = prepared.prepare(tmp_path / 'src', tmp_path / 'out',
                             progress=False)
  assert manifest['complete'] and len(manifest['images']) == 4
  names, hrs, lrs = prepared.open_prepared(tmp_path / 'out')
  assert names == [f'{i:04d}.png' for i in range(4)] and lrs is None
  for arr, hr in zip(arrays, hrs):
    assert isinstance(hr, np.memmap)
    np.testing.assert_array_equal(hr, arr)


def test_rerun_reuses_unchanged_images_only(tmp_path, monkeypatch):
  write_images(tmp_path / 'src')
  prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  decoded = []
  real = data.load_image
  monkeypatch.setattr(images, 'load_image',
                      lambda p: decoded.append(p.name) or real(p))
  prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  assert decoded == []
  new = np.zeros((36, 40, 3), np.uint8)
  Image.fromarray(new).save(tmp_path / 'src' / '0002.png')
  os.utime(tmp_path / 'src' / '0002.png', (1, 1))  # Surely a new mtime.
  prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  assert decoded == ['0002.png']
  np.testing.assert_array_equal(prepared.open_prepared(tmp_path / 'out')[1][2],
                                new)


def test_interrupted_prepare_resumes_and_is_refused_meanwhile(tmp_path,
                                                               monkeypatch):
  write_images(tmp_path / 'src', n=5)
  real = data.load_image
  calls = []

  def flaky(path):
    calls.append(path.name)
    if len(calls) == 4:
      raise KeyboardInterrupt  # Ctrl-C during the 4th image.
    return real(path)

  monkeypatch.setattr(images, 'load_image', flaky)
  with pytest.raises(KeyboardInterrupt):
    prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  with pytest.raises(UserError, match='did not finish'):
    prepared.open_prepared(tmp_path / 'out')
  calls.clear()
  monkeypatch.setattr(images, 'load_image',
                      lambda p: calls.append(p.name) or real(p))
  prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  assert calls == ['0003.png', '0004.png']  # The first three were kept.
  assert len(prepared.open_prepared(tmp_path / 'out')[1]) == 5


def test_corrupt_source_image_is_named(tmp_path):
  write_images(tmp_path / 'src', n=2)
  (tmp_path / 'src' / '0001.png').write_bytes(b'not a png')
  with pytest.raises(UserError, match='0001.png'):
    prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)


def make_div2k_like(root, n=3, lr_size=(13, 11), scale=4):
  """HR made of constant scale x scale blocks, so HR[::s, ::s] == LR."""
  rng = np.random.default_rng(3)
  (root / 'HR').mkdir(parents=True)
  (root / 'LR').mkdir(parents=True)
  lrs = []
  for i in range(n):
    lr = rng.integers(0, 256, (lr_size[1], lr_size[0], 3), dtype=np.uint8)
    hr = np.kron(lr, np.ones((scale, scale, 1), np.uint8))
    Image.fromarray(hr).save(root / 'HR' / f'{i + 1:04d}.png')
    Image.fromarray(lr).save(root / 'LR' / f'{i + 1:04d}x{scale}.png')
    lrs.append(lr)
  return lrs


def test_lr_files_are_paired_by_div2k_names(tmp_path):
  lrs = make_div2k_like(tmp_path)
  prepared.prepare(tmp_path / 'HR', tmp_path / 'out', lr_dir=tmp_path / 'LR',
                  scale=4, progress=False)
  _, hrs, got = prepared.open_prepared(tmp_path / 'out')
  for lr, g, hr in zip(lrs, got, hrs):
    np.testing.assert_array_equal(g, lr)
    assert hr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)


def test_lr_size_mismatch_and_missing_partner_are_named(tmp_path):
  make_div2k_like(tmp_path)
  Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(
      tmp_path / 'LR' / '0002x4.png')
  with pytest.raises(UserError, match=r'0002x4\.png.*0002\.png'):
    prepared.prepare(tmp_path / 'HR', tmp_path / 'out',
                    lr_dir=tmp_path / 'LR', scale=4, progress=False)
  (tmp_path / 'LR' / '0002x4.png').unlink()
  with pytest.raises(UserError, match=r'0002\.png: no LR partner'):
    prepared.prepare(tmp_path / 'HR', tmp_path / 'out2',
                    lr_dir=tmp_path / 'LR', scale=4, progress=False)


@pytest.mark.parametrize('augment', [False, True])
def test_pipeline_lr_patches_align_with_hr_patches(tmp_path, augment):
  lrs = make_div2k_like(tmp_path)
  hrs = [np.kron(lr, np.ones((4, 4, 1), np.uint8)) for lr in lrs]
  ds = data.train_dataset(hrs, crop=24, batch_size=4, seed=0, augment=augment,
                          lr_images=lrs, scale=4)
  it = iter(ds)
  for _ in range(5):
    batch = next(it)
    assert batch['hr'].shape == (4, 24, 24, 3)
    assert batch['lr'].shape == (4, 6, 6, 3)
    # Block-constant HR: every 4x4 block of the HR patch is one LR pixel,
    # under every flip/rotation too.
    np.testing.assert_array_equal(batch['hr'][:, ::4, ::4], batch['lr'])


def small_config(**data_overrides):
  c = demo_config.get_config()
  c.total_steps = 4
  c.log_every = 2
  c.checkpoint_every = 4
  c.tensorboard = False
  c.batch_size = 4
  c.model.num_blocks = 1
  c.model.channels = 8
  c.data.crop_size = 24
  c.data.sample_images = ''
  for k, v in data_overrides.items():
    c.data[k] = v
  return c


def test_training_from_official_lr_files_via_prepared_dir(tmp_path):
  make_div2k_like(tmp_path, lr_size=(16, 12))
  c = small_config(train_dir=str(tmp_path / 'HR'),
                   prepared_dir=str(tmp_path / 'prep'), lr_source='files',
                   train_lr_dir=str(tmp_path / 'LR'))
  state = train.train_and_evaluate(c, tmp_path / 'w')
  assert int(state.step) == 4
  assert prepared.is_prepared(tmp_path / 'prep')
  rows = training_metrics(tmp_path / 'w')
  assert rows and all(np.isfinite(r['loss']) for r in rows)


def test_training_from_a_prepared_folder_matches_raw_folder(tmp_path):
  """Same seed: mapped data gives the very same run as decoded data."""
  write_images(tmp_path / 'src', n=3, size=(48, 40))
  prepared.prepare(tmp_path / 'src', tmp_path / 'prep', progress=False)
  a = train.train_and_evaluate(small_config(train_dir=str(tmp_path / 'src')),
                               tmp_path / 'a')
  b = train.train_and_evaluate(small_config(train_dir=str(tmp_path / 'prep')),
                               tmp_path / 'b')
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_lr_files_without_lr_dir_is_a_config_error(tmp_path):
  write_images(tmp_path / 'src', n=2, size=(48, 40))
  c = small_config(train_dir=str(tmp_path / 'src'), lr_source='files')
  with pytest.raises(UserError, match='config.data.train_lr_dir'):
    train.train_and_evaluate(c, tmp_path / 'w')
  c = small_config(train_dir=str(tmp_path / 'src'), lr_source='bicubik')
  with pytest.raises(UserError, match='config.data.lr_source'):
    train.train_and_evaluate(c, tmp_path / 'w')


def test_cli(tmp_path):
  write_images(tmp_path / 'src', n=2)
  run = lambda *a: run_module('prepare', *a, timeout=120)
  r = run(f'--input={tmp_path / "src"}', f'--output={tmp_path / "out"}')
  assert r.returncode == 0, r.stderr
  assert 'preparing' in r.stderr and '2/2' in r.stderr
  assert prepared.is_prepared(tmp_path / 'out')
  r = run(f'--input={tmp_path / "nope"}', f'--output={tmp_path / "o2"}')
  assert r.returncode == 2 and str(tmp_path / 'nope') in r.stderr
  assert 'Traceback' not in r.stderr


def test_holdout_leaves_the_same_images_out_of_a_prepared_folder(tmp_path):
  arrays = write_images(tmp_path / 'src', n=6)
  prepared.prepare(tmp_path / 'src', tmp_path / 'out', progress=False)
  kept = lambda source: data.load_training_set(small_config(
      train_dir=str(source), holdout=2).data, scale=4)[0]
  raw, mapped = kept(tmp_path / 'src'), kept(tmp_path / 'out')
  assert len(raw) == len(mapped) == 4
  for a, b, want in zip(raw, mapped, [arrays[i] for i in (0, 2, 3, 5)]):
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)
