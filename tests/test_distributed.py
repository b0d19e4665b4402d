"""Data parallelism: start-up detection, sharded == single-device training,
batch splitting errors, and bfloat16 mixed precision."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo as demo_config
from gramjax import distributed
from gramjax import models
from gramjax import train
from gramjax.errors import UserError
from tests.conftest import REPO

TINY = ['--config.model.num_blocks=2', '--config.model.channels=8',
        '--config.data.crop_size=32', '--config.data.sample_images=',
        '--config.tensorboard=False', '--config.log_every=1']


def run_main(workdir, devices, *extra):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('JAX_COORDINATOR_ADDRESS', None)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return subprocess.run(
      [sys.executable, '-m', 'gramjax.main', '--config=configs/demo.py',
       f'--workdir={workdir}', *TINY, *extra], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=600)


def losses(workdir):
  lines = (workdir / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(l)['loss'] for l in lines]


@pytest.mark.parametrize('batch_norm', [False, True])
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
  assert model.first.kernel.value.dtype == jnp.float32
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
