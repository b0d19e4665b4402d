"""The benchmark scripts' own arithmetic: the MFU numerator, the PyTorch
reference's architecture, and the CPU-scale report's verdicts."""

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from gramjax import losses
from gramjax import state as state_lib
from gramjax import train
from tests.conftest import REPO


def load(name):
  spec = importlib.util.spec_from_file_location(
      name, REPO / 'benchmarks' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='module')
def bench_train():
  return load('bench_train')


@pytest.mark.parametrize('blocks,channels,crop', [
    pytest.param(16, 64, 48, marks=pytest.mark.slow), (2, 16, 32)])
def test_model_flops_match_xla_cost_analysis(bench_train, blocks, channels,
                                             crop):
  """The analytic count behind MFU against XLA's own count of the compiled
  NLL step (both heads trained) on the CPU, which also counts the
  elementwise work (a few %)."""
  config = base.get_config()
  config.model.num_blocks, config.model.channels = blocks, channels
  recipe = state_lib.build(config)
  step = jax.jit(train.make_train_step(
      recipe.graphdef, recipe.tx, losses.make_pixel_loss('nll', {}),
      recipe.schedule, scale=4, round_lr=True, attention_units='[-1,1]'))
  state = jax.jit(recipe.init)(recipe.params, recipe.model_state)
  batch = {'hr': jnp.zeros((2, crop, crop, 3), jnp.uint8)}
  xla = bench_train.compiled_flops(step.lower(state, batch).compile())
  if xla is None:
    pytest.skip('this backend reports no FLOPs')
  # XLA counts in-bounds taps only, plus the elementwise work (1-2 %): it
  # can only be above ours, and not by much.
  ours = bench_train.model_flops(config.model, 2, crop, count_padding=False)
  assert ours <= xla <= 1.03 * ours
  # The dense count (MFU's) only adds the padding taps.
  assert bench_train.model_flops(config.model, 2, crop) > ours


def test_torch_reference_has_the_same_parameters():
  torch = pytest.importorskip('torch')
  ref = load('torch_reference')
  config = base.get_config()
  params = state_lib.build(config).params
  ours = sorted(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  model = ref.SRResNet()
  theirs = sorted(p.numel() for p in model.parameters())
  assert ours == theirs
  mean, log_var = model(torch.zeros(1, 3, 6, 7))
  assert tuple(mean.shape) == tuple(log_var.shape) == (1, 3, 24, 28)


def test_reproduce_report_verdicts():
  rep = load('reproduce_cpu_scale')
  seeds, folders = [0, 1], ['Set5']
  entry = lambda p, s=0.8: {'Set5': {'psnr': p, 'ssim': s}}
  results = {'bicubic': entry(28.0),
             'mse': {0: entry(30.00), 1: entry(30.10)},
             'mle': {0: entry(29.70), 1: entry(29.90)},
             'gram': {0: entry(29.95), 1: entry(30.15)}}
  (line,) = rep.ordering(results, ['mse', 'mle', 'gram'], seeds, folders)
  assert 'MLE is below MSE in every seed' in line
  (verdict,) = rep.summary(results, ['mse', 'mle', 'gram'], seeds, folders)
  assert 'holds here, GRAM within 0.1 dB' in verdict
  assert 'MLE is below GRAM in every seed' in line
  assert 'GRAM is within 0.1 dB of MSE in every seed' in line
  results['gram'][1] = entry(29.81)  # Below MLE in seed 1, 0.29 dB off MSE.
  (line,) = rep.ordering(results, ['mse', 'mle', 'gram'], seeds, folders)
  assert 'MLE is not below GRAM' in line
  assert 'GRAM is not within 0.1 dB' in line
  (verdict,) = rep.summary(results, ['mse', 'mle', 'gram'], seeds, folders)
  assert 'below GRAM NOT in every one' in verdict
  assert 'does NOT hold here' in verdict
  table = rep.table_one(results, ['mse', 'mle', 'gram'], seeds, folders)
  row = table.splitlines()[-1].split('|')
  # GRAM: mean 29.88, sd of (29.95, 29.81), mean difference from MSE.
  assert row[5].strip().startswith('29.88/0.8000 (±0.10/±0.0000) [-0.17/')
