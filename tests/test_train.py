"""End-to-end training: the demo config trains, logs, checkpoints, resumes
exactly and writes its sample pictures; bad config values name the key."""

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax import checkpoint as ckpt_lib
from gramjax import train
from gramjax.errors import UserError
from tests.conftest import run_module, shared_data


def small_demo(total_steps, **overrides):
  c = demo_config.get_config()
  c.total_steps = total_steps
  c.log_every = 10
  c.checkpoint_every = 20
  c.tensorboard = False
  c.model.num_blocks = 2
  c.model.channels = 16
  c.data.crop_size = 48
  c.batch_size = 8
  for k, v in overrides.items():
    node = c
    *path, last = k.split('.')
    for p in path:
      node = node[p]
    node[last] = v
  return c


def read_metrics(workdir):
  lines = (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(l) for l in lines]


def params_of(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
  """60 steps of the (shrunk) demo config, then the same command to 80."""
  workdir = tmp_path_factory.mktemp('demo')
  state60 = train.train_and_evaluate(small_demo(60), workdir)
  metrics60 = read_metrics(workdir)
  state80 = train.train_and_evaluate(small_demo(80), workdir)
  return workdir, state60, metrics60, state80


def test_loss_falls_and_metrics_are_logged(demo_run):
  _, _, metrics, _ = demo_run
  assert [m['step'] for m in metrics] == [10, 20, 30, 40, 50, 60]
  for key in ('loss', 'nll', 'psnr', 'sigma_grey', 'mask', 'lr', 'grad_norm',
              'steps_per_sec'):
    assert all(np.isfinite(m[key]) for m in metrics), key
  assert metrics[-1]['loss'] < metrics[0]['loss'] - 0.1
  assert metrics[-1]['psnr'] > metrics[0]['psnr'] + 1.0
  assert metrics[0]['lr'] == pytest.approx(1e-3)


def test_checkpoint_restores_the_final_state(demo_run):
  workdir, _, _, state80 = demo_run
  ckpts = ckpt_lib.Checkpoints(workdir, every=20, keep=3)
  assert ckpts.latest_step() == 80
  restored = ckpts.restore(80, ckpt_lib.abstract_like(state80))
  assert int(restored.step) == 80
  for a, b in zip(params_of(restored), params_of(state80)):
    np.testing.assert_array_equal(a, b)
  assert ckpts.restore_config(80)['total_steps'] == 80
  ckpts.close()


def test_second_run_resumes_instead_of_restarting(demo_run):
  workdir, state60, _, state80 = demo_run
  assert int(state60.step) == 60 and int(state80.step) == 80
  steps = [m['step'] for m in read_metrics(workdir)]
  assert steps == [10, 20, 30, 40, 50, 60, 70, 80]  # No step logged twice.


def test_samples_written_for_held_out_image(demo_run):
  workdir, _, _, _ = demo_run
  samples = workdir / 'samples'
  hr = Image.open(pathlib.Path(__import__('skimage').__file__).parent /
                  'data' / 'chelsea.png')
  w, h = (hr.width // 4) * 4, (hr.height // 4) * 4
  for name in ('chelsea_mean.png', 'chelsea_uncertainty.png',
               'chelsea_bicubic.png'):
    img = Image.open(samples / name)
    assert img.size == (w, h) and img.mode == 'RGB', name
  unc = np.asarray(Image.open(samples / 'chelsea_uncertainty.png'))
  assert unc.std() > 1  # A map, not a constant.
  result = json.loads((samples / 'samples.json').read_text())[0]
  assert result['image'] == 'chelsea.png'
  assert 20 < result['psnr_y_bicubic'] < 40


def test_resume_is_exact(tmp_path):
  """20 + 20 steps in two runs == 40 steps in one (bit for bit on CPU)."""
  straight = train.train_and_evaluate(
      small_demo(40, **{'data.sample_images': ''}), tmp_path / 'a')
  train.train_and_evaluate(small_demo(20, **{'data.sample_images': ''}),
                           tmp_path / 'b')
  resumed = train.train_and_evaluate(
      small_demo(40, **{'data.sample_images': ''}), tmp_path / 'b')
  for a, b in zip(params_of(straight), params_of(resumed)):
    np.testing.assert_array_equal(a, b)
  ma, mb = read_metrics(tmp_path / 'a'), read_metrics(tmp_path / 'b')
  for x, y in zip(ma, mb):
    assert x['step'] == y['step'] and x['loss'] == y['loss']


@pytest.mark.parametrize('key,value,message', [
    ('data.crop_size', 50, 'config.data.crop_size=50'),
    ('optimizer.lr_boundaries', (300, 200), 'lr_boundaries'),
    ('optimizer.lr_values', (1e-4,), 'lr_values'),
    ('loss.name', 'gramm', "config.loss.name='gramm'"),
    ('loss.log_var_clip', (10.0, -10.0), 'log_var_clip'),
])
def test_bad_config_values_name_the_key(tmp_path, key, value, message):
  c = small_demo(1)
  section, name = key.split('.')
  with c.unlocked():
    c[section][name] = value
  with pytest.raises(UserError, match=message.replace('(', r'\(').replace(
      ')', r'\)').replace('[', r'\[')):
    train.train_and_evaluate(c, tmp_path)


def test_unknown_loss_option_is_refused(tmp_path):
  c = small_demo(1)
  c.loss.options = {'unitz': '[0,1]'}
  with pytest.raises(UserError, match='config.loss.options.unitz'):
    train.train_and_evaluate(c, tmp_path)


@pytest.mark.slow
def test_paper_model_three_steps_on_sunhays80(tmp_path):
  """The paper-size smoke run of docs/training.md: gram.py, real photos, 3 steps."""
  data = shared_data('SunHays80')
  r = run_module('main', '--config=configs/gram.py', f'--workdir={tmp_path}',
                 f'--config.data.train_dir={data}', '--config.total_steps=3',
                 '--config.log_every=1')
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = read_metrics(tmp_path)
  assert [m['step'] for m in metrics] == [1, 2, 3]
  assert all(np.isfinite(m['loss']) for m in metrics)
  assert metrics[0]['nll'] < 10  # Stable init: no 6e7 first NLL.
  assert (tmp_path / 'checkpoints' / '3').is_dir()


@pytest.mark.parametrize('name', ['gram', 'gram_vjp', 'mse', 'mle',
                                  'loss_rescale', 'beta_nll',
                                  'gram_official_code'])
def test_every_experiment_config_trains(tmp_path, name):
  """Each configs/*.py runs (shrunk): its loss, BatchNorm + PReLU + tanh
  and the log-variance clip of the official-code config included."""
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f'configs.{name}').get_config()
  c.total_steps, c.log_every, c.checkpoint_every = 2, 1, 2
  c.model.num_blocks, c.model.channels = 1, 8
  c.batch_size, c.data.crop_size, c.tensorboard = 4, 48, False
  c.data.train_dir = 'builtin:skimage'
  state = train.train_and_evaluate(c, tmp_path)
  metrics = read_metrics(tmp_path)
  assert [m['step'] for m in metrics] == [1, 2]
  assert all(np.isfinite(m['loss']) for m in metrics)
  bn = jax.tree.leaves(state.model_state)
  assert bool(bn) == c.model.batch_norm
  if bn:  # BatchNorm statistics moved away from their initial values.
    assert any(np.abs(np.asarray(x)).sum() > 0 for x in bn[::2])
