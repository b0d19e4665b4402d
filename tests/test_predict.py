"""``python -m gramjax.predict`` and its library ``gramjax.inference.photos``: user
images of every kind in, SR mean, uncertainty map with legend and raw
log-variance out; bad files cost one error line each; big photos run tiled
at bounded memory; each file's line appears as soon as it is done.

The command line is only run as a subprocess (importing it here would
define its flags in the test process).
"""

import os
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax.inference import predictor as inference
from gramjax.inference import photos
from gramjax.data import IMAGE_SUFFIXES
from gramjax.core import pixels
from gramjax.training import loop as train
from gramjax.core import visualize
from gramjax.core.errors import UserError
from tests.conftest import REPO, command, error_lines, run_module
from tests.conftest import shared_data

SCALE = 4


def tiny_config():
  c = demo_config.get_config()
  c.total_steps = 5
  c.log_every = 5
  c.checkpoint_every = 3           # Checkpoints at steps 3 and 5.
  c.tensorboard = False
  c.model.num_blocks = 1
  c.model.channels = 8
  c.data.crop_size = 32
  c.batch_size = 4
  c.data.sample_images = ''
  return c


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  wd = tmp_path_factory.mktemp('predict_model')
  train.train_and_evaluate(tiny_config(), wd)
  return wd


@pytest.fixture(scope='module')
def predictor(workdir):
  return inference.load(workdir)


def run_cli(*args, timeout=300, merge=False):
  """Runs the command; ``merge``: stderr into stdout, in the order written."""
  if not merge:
    return run_module('predict', *args, timeout=timeout)
  return subprocess.run(command('predict', *args), cwd=REPO,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, timeout=timeout, check=False)


def photo(h, w, seed=0):
  """A smooth random 'photo': bicubic-enlarged noise plus a little grain."""
  rng = np.random.default_rng(seed)
  small = rng.uniform(0, 255, (max(h // 100, 2), max(w // 100, 2), 3))
  big = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC)
  arr = np.asarray(big, np.float32) + rng.normal(0, 4, (h, w, 3))
  return np.clip(arr, 0, 255).astype(np.uint8)


def check_outputs(outdir, stem, lr_w, lr_h, mode='RGB', full=True,
                  log_var=True, bar=True):
  sr = Image.open(outdir / f'{stem}_sr.png')
  unc = Image.open(outdir / f'{stem}_uncertainty.png')
  assert sr.size == (lr_w * SCALE, lr_h * SCALE), stem
  assert sr.mode == mode, stem
  # The map is the SR image's size, with the legend's strip below it (and
  # black on the right where the map is narrower than the legend).
  if bar:
    assert unc.width >= sr.width and unc.height > sr.height, stem
  else:
    assert unc.size == sr.size, stem
  assert unc.mode == 'RGB', stem
  if not log_var:
    assert not (outdir / f'{stem}_log_var.npy').exists(), stem
    return sr, unc, None
  log_var = np.load(outdir / f'{stem}_log_var.npy',
                    mmap_mode=None if full else 'r')
  assert log_var.shape == (lr_h * SCALE, lr_w * SCALE, 3), stem
  assert log_var.dtype == np.float32, stem
  if full:
    assert np.isfinite(log_var).all(), stem
  return sr, unc, log_var


# ------------------------------------------------------------ acceptance --

@pytest.mark.slow
def test_set14_through_the_cli(workdir, tmp_path):
  data = shared_data('Set14')
  files = sorted(p for p in data.iterdir() if p.suffix == '.png')
  assert len(files) == 14
  out = tmp_path / 'out'
  proc = run_cli(f'--workdir={workdir}', f'--input={data}', f'--output={out}')
  assert proc.returncode == 0, proc.stderr
  assert 'predict: 14/14 (100%)' in proc.stderr   # The progress line.
  assert 'ETA' in proc.stderr and 'Traceback' not in proc.stderr
  assert not error_lines(proc.stderr)
  for path in files:
    with Image.open(path) as im:
      w, h = im.size
    mode = 'L' if path.stem == 'bridge' else 'RGB'
    check_outputs(out, path.stem, w, h, mode)
  assert len(list(out.iterdir())) == 14 * 3       # No temporary leftovers.
  # One result line per image on stdout, in name order.
  lines = proc.stdout.splitlines()
  assert [l.split(' ')[0] for l in lines] == [str(p) for p in files]
  assert all('_sr.png' in l and '_log_var.npy' in l for l in lines)


@pytest.mark.slow
def test_large_photo_runs_tiled_in_bounded_memory(workdir, tmp_path):
  src = tmp_path / 'photo.jpg'
  Image.fromarray(photo(1500, 2000)).save(src, quality=90)
  out = tmp_path / 'out'
  # A fresh parent, so RUSAGE_CHILDREN's maximum is this run's alone.
  wrapper = ('import resource, subprocess, sys\n'
             'rc = subprocess.run(sys.argv[1:]).returncode\n'
             'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n'
             'sys.exit(rc)\n')
  proc = subprocess.run(
      [sys.executable, '-c', wrapper, *command(
          'predict', f'--workdir={workdir}', f'--input={src}',
          f'--output={out}', '--tile=128')], cwd=REPO, capture_output=True,
      text=True, timeout=400, check=False)
  assert proc.returncode == 0, proc.stderr
  peak_gib = int(proc.stdout.strip().splitlines()[-1]) / 2**20  # KiB.
  print(f'peak RSS of the 2000x1500 prediction: {peak_gib:.2f} GiB')
  assert peak_gib < 4.0
  assert 'photo.jpg: 192/192' in proc.stderr     # Tile progress: 12 x 16.
  check_outputs(out, 'photo', 2000, 1500, full=False)


def test_tiled_equals_untiled(predictor, tmp_path):
  lr = photo(61, 97, seed=3).astype(np.float32) / 255.0
  whole_mean, whole_log_var = predictor(lr, tile=0)
  strips = list(predictor.strips(lr, tile=16))
  assert len(strips) == 4                          # ceil(61 / 16) strips.
  mean = np.concatenate([m for _, _, m, _ in strips])
  log_var = np.concatenate([v for _, _, _, v in strips])
  assert mean.shape == whole_mean.shape == (61 * SCALE, 97 * SCALE, 3)
  assert np.max(np.abs(mean - whole_mean)) < 1e-5
  assert np.max(np.abs(log_var - whole_log_var)) < 1e-5
  # The same tiles as Predictor.__call__: identical numbers.
  tiled_mean, tiled_log_var = predictor(lr, tile=16)
  np.testing.assert_array_equal(mean, tiled_mean)
  np.testing.assert_array_equal(log_var, tiled_log_var)
  # And through the files.
  src = tmp_path / 'small.png'
  Image.fromarray(photo(61, 97, seed=3)).save(src)
  outs = {}
  for tile in (0, 16):
    outdir = tmp_path / f'tile{tile}'
    outdir.mkdir()
    photos.predict_image(predictor, photos.Job(src, 'small'), outdir,
                         tile=tile)
    outs[tile] = outdir
  a = np.load(outs[0] / 'small_log_var.npy')
  b = np.load(outs[16] / 'small_log_var.npy')
  assert np.max(np.abs(a - b)) < 1e-5
  sr0 = np.asarray(Image.open(outs[0] / 'small_sr.png'), np.int16)
  sr16 = np.asarray(Image.open(outs[16] / 'small_sr.png'), np.int16)
  assert np.abs(sr0 - sr16).max() <= 1           # Rounding at most.


# ------------------------------------------------------------ bad input --

def _chunk(kind, data):
  return (struct.pack('>I', len(data)) + kind + data +
          struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def png_bytes(w, h, bit_depth=8, colour_type=2, rows=None, crc_ok=True):
  """A PNG built by hand (for headers Pillow would never write)."""
  ihdr = _chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bit_depth,
                                     colour_type, 0, 0, 0))
  parts = [b'\x89PNG\r\n\x1a\n', ihdr]
  if rows is not None:
    idat = _chunk(b'IDAT', zlib.compress(rows))
    if not crc_ok:
      idat = idat[:-4] + b'\0\0\0\0'
    parts.append(idat)
  parts.append(_chunk(b'IEND', b''))
  return b''.join(parts)


def png16_rgb_bytes(img16):
  """A 16-bit RGB PNG (Pillow cannot write one)."""
  h, w, _ = img16.shape
  raw = b''.join(b'\0' + img16[y].astype('>u2').tobytes() for y in range(h))
  return png_bytes(w, h, bit_depth=16, colour_type=2, rows=raw)


def make_bad_folder(folder):
  """Twenty files that must each fail with one error line; returns names."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  good = photo(24, 32, seed=1)
  Image.fromarray(good).save(folder / '_ref.png')
  png = (folder / '_ref.png').read_bytes()
  Image.fromarray(good).save(folder / '_ref.jpg', quality=90)
  jpg = (folder / '_ref.jpg').read_bytes()
  (folder / '_ref.png').unlink()
  (folder / '_ref.jpg').unlink()
  # A valid PNG whose compressed pixel data is damaged (and its CRC wrong).
  idat = png.index(b'IDAT')
  corrupt = bytearray(png)
  for i in range(idat + 20, idat + 60):
    corrupt[i] ^= 0x5a
  bad = {
      'empty.png': b'',
      'truncated.png': png[:len(png) // 2],
      'truncated.jpg': jpg[:len(jpg) // 2],
      'text.jpg': b'this is not a picture\n' * 20,
      'random.png': rng.bytes(4000),
      'corrupt_idat.png': bytes(corrupt),
      'truncated.ppm': b'P6\n64 64\n255\n' + rng.bytes(100),
      'zero_width.png': png_bytes(0, 10, rows=b'\0' * 10),
      'corrupt_gif.png': b'GIF89a' + rng.bytes(300),
      'page.jpeg': b'<!DOCTYPE html><html><body>404</body></html>\n',
      'garbage.bmp': b'BM' + rng.bytes(500),
      'garbage.tif': b'II*\x00' + rng.bytes(500),
      'garbage.webp': b'RIFF\x00\x10\x00\x00WEBPVP8 ' + rng.bytes(500),
      'bomb.png': png_bytes(100000, 100000),
      'header_only.png': png_bytes(16, 16),
      'soi_only.jpg': b'\xff\xd8\xff',
      'bad_colour_type.png': png_bytes(8, 8, colour_type=7,
                                       rows=b'\0' * 80),
      'zero_frames_gif.png': b'GIF89a' + struct.pack('<HHBBB', 4, 4, 0, 0, 0)
                         + b';',
  }
  for name, content in bad.items():
    (folder / name).write_bytes(content)
  (folder / 'folder.png').mkdir()                       # 19
  os.symlink(folder / 'missing_target.png', folder / 'dangling.png')  # 20
  return sorted(bad) + ['folder.png', 'dangling.png']


def test_twenty_bad_files_one_line_each(workdir, tmp_path):
  folder = tmp_path / 'in'
  bad = make_bad_folder(folder)
  assert len(bad) == 20
  good = {'good_a.png': (40, 30), 'good_b.jpg': (33, 21),
          'good_c.bmp': (20, 28)}
  for i, (name, (w, h)) in enumerate(good.items()):
    Image.fromarray(photo(h, w, seed=i)).save(folder / name)
  (folder / 'notes.txt').write_text('not an image suffix: ignored')
  (folder / '.DS_Store').write_bytes(b'\0' * 10)
  out = tmp_path / 'out'
  proc = run_cli(f'--workdir={workdir}', f'--input={folder}',
                 f'--output={out}')
  assert proc.returncode == 1, proc.stderr
  assert 'Traceback' not in proc.stderr
  errors = error_lines(proc.stderr)
  assert len(errors) == 20, '\n'.join(errors)
  for name in bad:
    hits = [e for e in errors if f'{folder / name}:' in e]
    assert len(hits) == 1, (name, errors)
  assert 'decompression bomb' in next(e for e in errors if 'bomb.png' in e)
  assert 'empty file' in next(e for e in errors if 'empty.png' in e)
  assert 'is a folder' in next(e for e in errors if 'folder.png' in e)
  assert 'ignored 2 entries' in proc.stderr                # notes.txt, .DS_Store
  for name, (w, h) in good.items():
    check_outputs(out, pathlib.Path(name).stem, w, h)
  assert sorted(p.name for p in out.iterdir()) == sorted(
      f'{pathlib.Path(n).stem}{s}' for n in good
      for s in photos.OUTPUT_SUFFIXES)
  assert 'done: 3 of 23 images' in proc.stderr


def test_unreadable_file_is_one_error(predictor, tmp_path):
  if os.geteuid() == 0:
    pytest.skip('root reads files whatever their permissions')
  src = tmp_path / 'locked.png'
  Image.fromarray(photo(8, 8)).save(src)
  src.chmod(0)
  notes = []
  results, failures = photos.predict_all(
      predictor, [photos.Job(src, 'locked')], tmp_path, say=notes.append)
  assert not results and len(failures) == 1
  assert failures[0][1].startswith(f'error: {src}: cannot read it')


# ------------------------------------------------------------ image kinds --

def test_every_kind_of_image(predictor, tmp_path):
  src = tmp_path / 'in'
  src.mkdir()
  rgb = photo(20, 28, seed=5)
  Image.fromarray(np.dstack([rgb, np.full((20, 28), 128, np.uint8)]),
                  'RGBA').save(src / 'rgba.png')
  Image.fromarray(rgb).convert('LA').save(src / 'grey_alpha.png')
  grey16 = (np.linspace(0, 65535, 20 * 28).reshape(20, 28)).astype(np.uint16)
  Image.fromarray(grey16).save(src / 'grey16.png')
  assert Image.open(src / 'grey16.png').mode.startswith('I')
  (src / 'rgb16.png').write_bytes(png16_rgb_bytes(rgb.astype(np.uint16) * 257))
  Image.fromarray(rgb).convert('P').save(src / 'palette.png')
  Image.fromarray(rgb).convert('L').save(src / 'grey.jpg')
  Image.fromarray(rgb).convert('CMYK').save(src / 'cmyk.jpg')
  Image.fromarray(rgb).save(src / 'tiny_gif.png', format='GIF')
  exif = Image.Exif()
  exif[0x0112] = 6                      # Rotate 90 degrees clockwise.
  Image.fromarray(rgb).save(src / 'rotated.jpg', exif=exif)
  assert Image.open(src / 'palette.png').mode == 'P'
  assert Image.open(src / 'cmyk.jpg').mode == 'CMYK'
  paths, _ = photos.list_inputs(str(src))
  out = tmp_path / 'out'
  out.mkdir()
  notes = []
  jobs = photos.plan_outputs(paths, out, say=notes.append)
  results, failures = photos.predict_all(predictor, jobs, out,
                                         say=notes.append)
  assert not failures, failures
  assert len(results) == 9
  for stem in ('rgba', 'rgb16', 'palette', 'cmyk', 'tiny_gif'):
    check_outputs(out, stem, 28, 20, 'RGB')
  for stem in ('grey_alpha', 'grey16', 'grey'):
    check_outputs(out, stem, 28, 20, 'L')
  check_outputs(out, 'rotated', 20, 28, 'RGB')       # Upright: 20 wide.
  alpha_notes = [n for n in notes if 'alpha' in n]
  assert len(alpha_notes) == 2                        # rgba.png, grey_alpha.
  assert any('rgba.png' in n for n in alpha_notes)


def test_16bit_grey_keeps_its_range(predictor, tmp_path):
  """A 16-bit file is read on its 0-65535 scale (not as 8-bit garbage)."""
  ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
  Image.fromarray(ramp).save(tmp_path / 'ramp16.png')
  img = photos.read_image(tmp_path / 'ramp16.png')
  assert img.grey and not img.alpha
  np.testing.assert_array_equal(img.pixels[..., 0],
                                np.round(ramp / 257).astype(np.uint8))


# -------------------------------------------------------- usage errors --

def test_usage_errors_exit_2_with_one_line(workdir, tmp_path):
  img = tmp_path / 'a.png'
  Image.fromarray(photo(8, 8)).save(img)
  cases = [
      ([f'--workdir={tmp_path / "nope"}', f'--input={img}',
        f'--output={tmp_path / "o"}'], '--workdir='),
      ([f'--input={img}', f'--output={tmp_path / "o"}'], '--workdir=DIR'),
      ([f'--workdir={workdir}', f'--input={tmp_path / "missing.png"}',
        f'--output={tmp_path / "o"}'], 'missing.png'),
      ([f'--checkpoint={workdir}/checkpoints/3', '--step=5', f'--input={img}',
        f'--output={tmp_path / "o"}'], 'disagree'),
      ([f'--checkpoint={workdir}/checkpoints/99', f'--input={img}',
        f'--output={tmp_path / "o"}'], '--checkpoint='),
      (['--no_such_flag=1'], 'no_such_flag'),
  ]
  for args, expected in cases:
    proc = run_cli(*args)
    assert proc.returncode == 2, (args, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error:'), proc.stderr
    assert expected in lines[0], (expected, lines[0])
  assert not (tmp_path / 'o').exists()


def test_checkpoint_flag_selects_that_step(workdir, tmp_path):
  assert inference.resolve_model(None, f'{workdir}/checkpoints/3', None) == (
      workdir, 3)
  assert inference.resolve_model(None, f'{workdir}/checkpoints', None) == (
      workdir, None)
  assert inference.resolve_model(str(workdir), None, 5) == (workdir, 5)
  with pytest.raises(UserError, match='not a checkpoint folder'):
    inference.resolve_model(None, str(tmp_path), None)
  img = tmp_path / 'a.png'
  Image.fromarray(photo(12, 16)).save(img)
  out = tmp_path / 'out'
  proc = run_cli(f'--checkpoint={workdir}/checkpoints/3', f'--input={img}',
                 f'--output={out}')
  assert proc.returncode == 0, proc.stderr
  assert 'step 3 (ema weights, x4)' in proc.stderr  # The demo's EMA.
  log_var = np.load(out / 'a_log_var.npy')
  lr = np.asarray(Image.open(img), np.float32) / 255.0
  step3 = inference.load(workdir, 3)(lr, tile=0)[1]
  step5 = inference.load(workdir, 5)(lr, tile=0)[1]
  assert not np.array_equal(step3, step5)     # The weights differ.
  np.testing.assert_allclose(log_var, step3, atol=1e-5)


def test_outputs_never_overwrite_inputs(tmp_path):
  folder = tmp_path / 'photos'
  folder.mkdir()
  for name in ('a.png', 'a_sr.png', 'b.jpg', 'b.png'):
    Image.fromarray(photo(8, 8)).save(folder / name)
  paths, _ = photos.list_inputs(str(folder), say=lambda m: None)
  with pytest.raises(UserError, match='would overwrite the input'):
    photos.plan_outputs(paths, folder, say=lambda m: None)
  notes = []
  jobs = photos.plan_outputs(paths, tmp_path / 'out', say=notes.append)
  assert [j.stem for j in jobs] == ['a', 'a_sr', 'b_jpg', 'b_png']
  assert 'b.jpg as b_jpg_*' in notes[0]
  # A first run into the input folder itself is fine (nothing collides).
  lone = tmp_path / 'lone'
  lone.mkdir()
  Image.fromarray(photo(8, 8)).save(lone / 'x.png')
  paths, _ = photos.list_inputs(str(lone))
  assert [j.stem for j in photos.plan_outputs(paths, lone)] == ['x']
  # Only the outputs written count: without the .npy, an input named like
  # it is safe.
  npy_named = [lone / 'x.png', lone / 'x_log_var.npy']
  with pytest.raises(UserError, match='x_log_var.npy there would overwrite'):
    photos.plan_outputs(npy_named, lone)
  assert [j.stem for j in photos.plan_outputs(npy_named, lone,
                                              log_var=False)] == [
                                                  'x', 'x_log_var']


# --------------------------------------------------------------- legend --

def test_uncertainty_map_legend_and_fixed_scale(predictor, tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  srcs = []
  for i, (h, w) in enumerate([(60, 80), (48, 72)]):
    src = tmp_path / f'img{i}.png'
    Image.fromarray(photo(h, w, seed=10 + i)).save(src)
    srcs.append(src)
  # The colour scale: fixed at the first image's median sigma, so both
  # images span several colours of it.
  first = photos.predict_image(predictor, photos.Job(srcs[0], 'probe'),
                               out)
  sigma0 = pixels.sigma_grey(np.load(first.log_var))
  sigma_max = float(np.median(sigma0))
  for i, src in enumerate(srcs):
    r = photos.predict_image(predictor, photos.Job(src, f'img{i}'), out,
                             sigma_max=sigma_max)
    assert r.sigma_max == sigma_max
    unc = np.asarray(Image.open(r.uncertainty))
    sr = Image.open(r.sr)
    sigma = pixels.sigma_grey(np.load(r.log_var))
    plain = visualize.colormap(sigma, sigma_max)
    # The map: exactly the colour map on the shared scale (equal sigmas get
    # equal colours in both images), nothing drawn over it.
    np.testing.assert_array_equal(unc[:sr.height], plain)
    # Below it: the legend, where legend_box says.
    top, left, bottom, right = visualize.legend_box(plain.shape, sigma_max)
    assert sr.height < top < bottom <= unc.shape[0]
    assert right <= unc.shape[1] == sr.width
    assert (unc[top:bottom, left:right] != 0).any(axis=-1).mean() > 0.1
    assert Image.open(r.uncertainty).text['sigma_max_grey'] == (
        f'{sigma_max:.6g}')
  # Without the colour bar: the map alone, the SR image's size.
  r = photos.predict_image(predictor, photos.Job(srcs[0], 'bare'), out,
                           sigma_max=sigma_max, colour_bar=False)
  unc = np.asarray(Image.open(r.uncertainty))
  np.testing.assert_array_equal(unc, visualize.colormap(
      pixels.sigma_grey(np.load(r.log_var)), sigma_max))
  # Default scale: the image's own 99th percentile.
  sigma = pixels.sigma_grey(np.load(first.log_var))
  assert first.sigma_max == pytest.approx(visualize.robust_vmax(
      sigma.astype(np.float32)))



def test_no_empty_output_folder_after_a_failed_run(workdir, tmp_path):
  img = tmp_path / 'a.png'
  Image.fromarray(photo(8, 8)).save(img)
  # --step=99 passes the flag checks and fails only when the model loads,
  # after the output folder is made: it is removed again.
  out = tmp_path / 'out'
  proc = run_cli(f'--workdir={workdir}', '--step=99', f'--input={img}',
                 f'--output={out}')
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: --step=99'), lines
  assert not out.exists()
  # A folder that was there before is left alone.
  out.mkdir()
  proc = run_cli(f'--workdir={workdir}', '--step=99', f'--input={img}',
                 f'--output={out}')
  assert proc.returncode == 2 and out.is_dir()
  out.rmdir()
  # Every file failing (status 1) leaves no new folder either.
  empty = tmp_path / 'empty.png'
  empty.write_bytes(b'')
  proc = run_cli(f'--workdir={workdir}', f'--input={empty}',
                 f'--output={out}')
  assert proc.returncode == 1, proc.stderr
  assert error_lines(proc.stderr) == [f'error: {empty}: empty file (0 bytes)']
  assert not out.exists()


def test_nolog_var_and_each_line_as_soon_as_done(workdir, tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  Image.fromarray(photo(20, 24, seed=1)).save(folder / 'a.png')
  (folder / 'b.png').write_bytes(b'')               # Fails in the middle.
  Image.fromarray(photo(16, 28, seed=2)).save(folder / 'c.png')
  out = tmp_path / 'out'
  proc = run_cli(f'--workdir={workdir}', f'--input={folder}',
                 f'--output={out}', '--nolog_var', merge=True)
  assert proc.returncode == 1, proc.stdout
  assert 'Traceback' not in proc.stdout
  check_outputs(out, 'a', 24, 20, log_var=False)
  check_outputs(out, 'c', 28, 16, log_var=False)
  assert sorted(p.name for p in out.iterdir()) == [
      'a_sr.png', 'a_uncertainty.png', 'c_sr.png', 'c_uncertainty.png']
  # stdout and stderr in the order written: a's line comes before b is
  # tried, b's error before c's line.
  lines = proc.stdout.splitlines()
  first = lambda prefix: next(i for i, l in enumerate(lines)
                              if l.startswith(prefix))
  a = first(f'{folder / "a.png"} (24x20) -> a_sr.png (96x80)')
  b = first(f'error: {folder / "b.png"}: empty file')
  c = first(f'{folder / "c.png"} (28x16) -> c_sr.png (112x64)')
  assert a < b < c, lines
  assert '_log_var.npy' not in lines[a] + lines[c]
  assert 'done: 2 of 3 images' in lines[-1]


def test_on_result_comes_before_the_next_file(predictor, tmp_path):
  paths = []
  for name in ('a.png', 'b.png', 'c.png'):
    paths.append(tmp_path / name)
    Image.fromarray(photo(8, 12, seed=len(paths))).save(paths[-1])
  paths[1].write_bytes(b'not a png')
  out = tmp_path / 'out'
  out.mkdir()
  events = []
  results, failures = photos.predict_all(
      predictor, [photos.Job(p, p.stem) for p in paths], out,
      show_progress=False, log_var=False, say=events.append,
      on_result=lambda r: events.append(r.line()))
  assert [r.path for r in results] == [paths[0], paths[2]]
  assert [f[0] for f in failures] == [paths[1]]
  assert len(events) == 3, events
  assert events[0].startswith(f'{paths[0]} (12x8) -> a_sr.png (48x32), '
                              'a_uncertainty.png (0-')
  assert events[0].endswith('grey levels)')         # No .npy named.
  assert events[1].startswith(f'error: {paths[1]}: cannot decode image')
  assert events[2].startswith(f'{paths[2]} (12x8) -> c_sr.png')
  assert all(r.log_var is None for r in results)
  assert sorted(p.name for p in out.iterdir()) == [
      'a_sr.png', 'a_uncertainty.png', 'c_sr.png', 'c_uncertainty.png']
  # With the .npy, the line names it and the file holds the log-variance.
  r = photos.predict_image(predictor, photos.Job(paths[0], 'a'), out)
  assert r.line().endswith(', a_log_var.npy')
  lr = np.asarray(Image.open(paths[0]), np.float32) / 255.0
  np.testing.assert_allclose(np.load(r.log_var), predictor(lr)[1],
                             atol=1e-6)


# ---------------------------------------------------------------- rerun --

def test_suffixes_are_the_data_ones(tmp_path):
  assert photos.IMAGE_SUFFIXES == IMAGE_SUFFIXES
  for name in ('a.png', 'b.gif', 'c.PPM'):
    Image.fromarray(photo(8, 8)).save(tmp_path / name,
                                      format=name.split('.')[1].upper())
  paths, _ = photos.list_inputs(str(tmp_path), say=lambda m: None)
  assert [p.name for p in paths] == ['a.png', 'c.PPM']


def test_a_rerun_skips_images_already_done(workdir, tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  for i, name in enumerate(('a.png', 'b.png', 'c.png')):
    Image.fromarray(photo(12, 16, seed=i)).save(folder / name)
  out = tmp_path / 'out'
  jobs = photos.plan_outputs(sorted(folder.iterdir()), out)
  # As after an interruption: a done, b with one output only, c not begun.
  out.mkdir()
  for name in ('a_sr.png', 'a_uncertainty.png', 'a_log_var.npy',
               'b_sr.png'):
    (out / name).write_bytes(b'old')
  todo, done = photos.split_done(jobs, out)
  assert [j.stem for j in done] == ['a'] and [j.stem for j in todo] == [
      'b', 'c']
  todo, done = photos.split_done(jobs, out, log_var=False)
  assert [j.stem for j in done] == ['a']
  proc = run_cli(f'--workdir={workdir}', f'--input={folder}',
                 f'--output={out}', '--nocolour_bar')
  assert proc.returncode == 0, proc.stderr
  assert 'skipped 1 image whose outputs are already complete' in proc.stderr
  assert 'done: 2 of 2 images' in proc.stderr, proc.stderr
  assert (out / 'a_sr.png').read_bytes() == b'old'       # Left alone.
  check_outputs(out, 'b', 16, 12, bar=False)
  check_outputs(out, 'c', 16, 12, bar=False)
  proc = run_cli(f'--workdir={workdir}', f'--input={folder}',
                 f'--output={out}', '--redo')
  assert proc.returncode == 0, proc.stderr
  assert 'skipped' not in proc.stderr and 'done: 3 of 3' in proc.stderr
  check_outputs(out, 'a', 16, 12)


def test_tile_flag_bounds(workdir, tmp_path):
  img = tmp_path / 'a.png'
  Image.fromarray(photo(8, 8)).save(img)
  proc = run_cli(f'--workdir={workdir}', f'--input={img}',
                 f'--output={tmp_path / "o"}', '--tile=-1')
  assert proc.returncode == 2 and 'tile' in proc.stderr, proc.stderr
  assert not (tmp_path / 'o').exists()
