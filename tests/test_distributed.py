"""Data parallelism: start-up detection, sharded == single-device training,
batch splitting errors, and bfloat16 mixed precision."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo as demo_config
from gramjax.state import distributed
from gramjax import models
from gramjax.training import loop as train
from gramjax.core.errors import UserError
from tests.conftest import run_module, training_metrics

TINY = ['--config.model.num_blocks=2', '--config.model.channels=8',
        '--config.data.crop_size=32', '--config.data.sample_images=',
        '--config.tensorboard=False', '--config.log_every=1']


def run_main(workdir, devices, *extra):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('JAX_COORDINATOR_ADDRESS', None)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return run_module('main', '--config=configs/demo.py',
                    f'--workdir={workdir}', *TINY, *extra, env=env)


def losses(workdir):
  return [m['loss'] for m in training_metrics(workdir)]


@pytest.mark.parametrize('batch_norm', [
    False, pytest.param(True, marks=pytest.mark.slow)])
def test_eight_devices_match_one_device(tmp_path, batch_norm):
  """5 steps, global batch 8: sharded over 8 virtual CPU devices (one image
  per device; BatchNorm statistics still over the global batch) == 1."""
  extra = ['--config.total_steps=5', '--config.batch_size=8',
           f'--config.model.batch_norm={batch_norm}']
  one = run_main(tmp_path / 'one', 1, *extra)
  assert one.returncode == 0, one.stderr[-3000:]
  eight = run_main(tmp_path / 'eight', 8, *extra)
  assert eight.returncode == 0, eight.stderr[-3000:]
  assert '8 local of 8 cpu devices' in eight.stderr
  assert '1 per device' in eight.stderr
  a, b = losses(tmp_path / 'one'), losses(tmp_path / 'eight')
  assert len(a) == len(b) == 5
  np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
  assert a[-1] != a[0]  # It trained.


def test_batch_that_does_not_divide_is_refused(tmp_path):
  r = run_main(tmp_path, 8, '--config.total_steps=1', '--config.batch_size=12')
  assert r.returncode == 2
  assert 'config.batch_size=12 does not divide over 8 devices' in r.stderr
  assert 'Traceback' not in r.stderr


@pytest.mark.parametrize('env,how', [
    ({}, 'single'),
    ({'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234'}, 'explicit'),
    ({'SLURM_JOB_ID': '7', 'SLURM_STEP_ID': '0'}, 'slurm'),
    ({'SLURM_JOB_ID': '7'}, 'single'),  # In a batch script, not srun.
    ({'TPU_WORKER_HOSTNAMES': 'a,b,c,d'}, 'tpu_pod'),
    ({'TPU_WORKER_HOSTNAMES': 'a'}, 'single'),  # One-host TPU VM.
])
def test_detect(monkeypatch, env, how):
  for k in ('JAX_COORDINATOR_ADDRESS', 'SLURM_JOB_ID', 'SLURM_STEP_ID',
            'TPU_WORKER_HOSTNAMES'):
    monkeypatch.delenv(k, raising=False)
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  assert distributed.detect() == how


@pytest.mark.parametrize('env,message', [
    ({'JAX_NUM_PROCESSES': '2'}, 'JAX_PROCESS_ID must be set'),
    ({'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '2'},
     'JAX_PROCESS_ID=2 must be in 0..'),
    ({'JAX_NUM_PROCESSES': 'two', 'JAX_PROCESS_ID': '0'},
     "JAX_NUM_PROCESSES='two' is not an integer"),
])
def test_explicit_start_up_errors_name_the_variable(monkeypatch, env,
                                                    message):
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', '127.0.0.1:1')
  for k in ('JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    monkeypatch.delenv(k, raising=False)
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  with pytest.raises(UserError, match=message):
    distributed.initialize()


def test_one_process_start_up_is_a_no_op(monkeypatch):
  monkeypatch.delenv('JAX_COORDINATOR_ADDRESS', raising=False)
  monkeypatch.setenv('JAX_NUM_PROCESSES', '1')
  t = distributed.initialize(coordinator_address=None)
  assert (t.process_index, t.process_count) == (0, 1)
  assert t.global_devices == jax.device_count()
  assert not jax.distributed.is_initialized()
  assert distributed.split_batch(16) == (16, 16 // jax.device_count())


def test_bfloat16_compute_keeps_float32_parameters(tmp_path):
  c = demo_config.get_config()
  c.model.num_blocks, c.model.channels = 2, 8
  c.model.compute_dtype = 'bfloat16'
  model = models.build_model(c.model, seed=0)
  lr = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
  mean, log_var = model(lr)
  assert mean.dtype == log_var.dtype == jnp.float32  # Loss in float32.
  assert model.first.kernel[...].dtype == jnp.float32
  c32 = demo_config.get_config()
  c32.model.num_blocks, c32.model.channels = 2, 8
  mean32, _ = models.build_model(c32.model, seed=0)(lr)
  diff = float(jnp.abs(mean - mean32).max())
  assert 0 < diff < 0.05 * float(jnp.abs(mean32).max())  # bf16 rounding.
  c.total_steps, c.batch_size, c.data.crop_size = 3, 4, 32
  c.data.sample_images, c.tensorboard, c.log_every = '', False, 1
  state = train.train_and_evaluate(c, tmp_path)
  leaves = jax.tree.leaves(state.params) + jax.tree.leaves(state.opt_state)
  assert all(x.dtype in (jnp.float32, jnp.int32) for x in leaves)
  assert all(np.isfinite(l) for l in losses(tmp_path))


# --- config.cpu_devices ----------------------------------------------------


@pytest.fixture
def single_process(monkeypatch):
  for k in ('JAX_COORDINATOR_ADDRESS', 'SLURM_STEP_ID',
            'TPU_WORKER_HOSTNAMES', 'XLA_FLAGS'):
    monkeypatch.delenv(k, raising=False)
  return monkeypatch


@pytest.mark.parametrize('requested,cores,batch,devices', [
    (0, 2, 16, 2), (0, 4, 6, 3), (0, 2, 3, 1), (0, 64, 16, 8), (1, 4, 16, 1),
    (4, 2, 16, 4)])
def test_cpu_devices_count(single_process, requested, cores, batch, devices):
  single_process.setattr(distributed, 'usable_cores', lambda: cores)
  single_process.setenv('XLA_FLAGS', '--xla_cpu_enable_fast_math=false')
  assert distributed.configure_cpu_devices(requested, batch) == devices
  flags = os.environ['XLA_FLAGS']
  assert flags.startswith('--xla_cpu_enable_fast_math=false')  # Kept.
  assert (f'--xla_force_host_platform_device_count={devices}' in flags) == (
      devices > 1)


@pytest.mark.parametrize('env', [
    {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'},  # Explicit.
    {'JAX_COORDINATOR_ADDRESS': '127.0.0.1:1'},  # Multi-process.
    {'SLURM_JOB_ID': '7', 'SLURM_STEP_ID': '0'}])
def test_cpu_devices_leave_explicit_and_multiprocess_settings(single_process,
                                                              env):
  for k, v in env.items():
    single_process.setenv(k, v)
  before = os.environ.get('XLA_FLAGS')
  assert distributed.configure_cpu_devices(0, 16) is None
  assert os.environ.get('XLA_FLAGS') == before


@pytest.mark.parametrize('requested', [3, -1])
def test_bad_cpu_devices_are_refused(single_process, requested):
  before = os.environ.get('XLA_FLAGS')
  with pytest.raises(ValueError, match=f'cpu_devices={requested} must be '
                     '>= 0 and, above 1, divide batch_size=16'):
    distributed.configure_cpu_devices(requested, 16)
  assert os.environ.get('XLA_FLAGS') == before


def test_training_splits_the_cpu_by_default(tmp_path):
  """Through the command line: the log shows one device per core (two on
  the CI machine), and --config.cpu_devices=1 keeps one."""
  cores = min(distributed.usable_cores(), 8)
  expected = max(d for d in range(1, cores + 1) if 4 % d == 0)
  for requested, devices in ((0, expected), (1, 1)):
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    env['JAX_PLATFORMS'] = 'cpu'
    r = run_module(
        'main', '--config=configs/demo.py',
        f'--workdir={tmp_path / str(requested)}', '--config.total_steps=1',
        '--config.batch_size=4', '--config.model.num_blocks=1',
        '--config.model.channels=8', '--config.data.crop_size=32',
        '--config.data.sample_images=', '--config.tensorboard=False',
        f'--config.cpu_devices={requested}', env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'{devices} local of {devices} cpu devices' in r.stderr
