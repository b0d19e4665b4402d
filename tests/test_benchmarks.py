"""The benchmark scripts' own arithmetic: the MFU numerator, the PyTorch
reference's architecture, and the CPU-scale report's verdicts."""

import importlib.util
import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from gramjax.core import losses
from gramjax.state import train_state as state_lib
from gramjax.training import loop as train
from tests.conftest import REPO


def load(name):
  spec = importlib.util.spec_from_file_location(
      name, REPO / 'benchmarks' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def study():
  """The CPU-scale study's tables, answers and page as one namespace."""
  from benchmarks import study_answers, study_page, study_tables  # pylint: disable=g-import-not-at-top
  return types.SimpleNamespace(**{**vars(study_tables), **vars(study_answers),
                                  **vars(study_page)})


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


def _study_results(gaps, covs_after, seeds=(0, 1, 2), folders=('Set5',),
                   ause=None, collapse=()):
  """Synthetic study results: ``gaps[loss]`` = PSNR minus MSE's (dB, the
  same for every seed but for a +-0.01 wobble), ``covs_after[loss]`` =
  RGB coverage_90 after sigma scaling; the runs ``(loss, seed)`` in
  ``collapse`` end at 10 dB with a coverage of 0."""
  def quality(cov, ause=0.3, nll=3.0, mace=0.1):
    q = {'coverage_90': cov, 'ause': ause, 'nll': nll, 'mace': mace,
         'spearman': 0.5, 'auce': mace, 'mean_sigma': 8.0, 'rmse': 10.0}
    return {'rgb': q, 'y': dict(q)}
  results = {'bicubic': {f: {'psnr': 28.0, 'ssim': 0.8} for f in folders}}
  for loss, g in {'mse': 0.0, **gaps}.items():
    results[loss] = {}
    for s in seeds:
      bad = (loss, s) in collapse
      entry = {'psnr': 10.0 if bad else 30.0 + g + 0.01 * (s - 1),
               'ssim': 0.8}
      if loss != 'mse':
        entry.update(uncertainty=quality(0.0 if bad else 0.75,
                                         mace=0.1 + 0.05 * g,
                                         ause=(ause or {}).get(loss, 0.3)),
                     uncertainty_sigma_scaling=quality(covs_after[loss],
                                                       mace=0.01),
                     uncertainty_isotonic=quality(0.9, mace=0.005),
                     error_channel_correlation=0.6, ideal_scale_rgb=1.3)
      results[loss][s] = {
          'folders': {f: entry for f in folders},
          'calibration': {'sigma_scaling': {'values': {'rgb': {'scale': 1.2}}}}}
  return results


def test_reproduce_answers_follow_the_numbers():
  rep = study()
  seeds, folders = [0, 1, 2], ['Set5']
  losses = ['mse', 'gram', 'beta_nll_1', 'faithful']
  covs = {'gram': 0.89, 'beta_nll_1': 0.91, 'faithful': 0.88}
  results = _study_results({'gram': -0.3, 'mle': -1.0}, {'gram': 0.9,
                                                          'mle': 0.9})
  (_, order) = rep.cost_answer(results, ['mse', 'mle', 'gram'], seeds,
                               folders)
  assert 'MLE (the plain NLL) is -1.00 ±0.00 dB from MSE' in order
  assert 'below GRAM in 3 of 3' in order and 'recovers 70%' in order
  # beta-NLL(1) costs what GRAM costs, faithful nothing: the shared trunk.
  results = _study_results({'gram': -0.3, 'beta_nll_1': -0.28,
                            'faithful': 0.0}, covs)
  cost = '\n'.join(rep.cost_answer(results, losses, seeds, folders))
  assert 'GRAM is -0.30 ±0.00 dB from MSE over 1 set(s) and 3 seeds' in cost
  assert 'the same as GRAM' in cost
  assert "comes from the variance head's gradient" in cost
  # beta-NLL(1) at MSE's PSNR: the trunk does not explain it.
  results = _study_results({'gram': -0.3, 'beta_nll_1': 0.0,
                            'faithful': 0.0}, covs)
  cost = '\n'.join(rep.cost_answer(results, losses, seeds, folders))
  assert 'does not explain the cost' in cost
  best = rep.best_answer(results, losses, seeds, folders)[0]
  # GRAM loses 0.3 dB for the same AUSE: beaten on both by the others.
  assert 'beta-NLL 1 (' in best and 'Faithful (' in best
  assert 'GRAM (' not in best
  # A better ranking for 0.3 dB: GRAM joins the front, Faithful leads it.
  results = _study_results({'gram': -0.3, 'beta_nll_1': -0.4,
                            'faithful': 0.0}, covs,
                           ause={'gram': 0.2, 'beta_nll_1': 0.25})
  best = rep.best_answer(results, losses, seeds, folders)[0]
  assert best.index('Faithful (') < best.index('GRAM (')
  assert 'beta-NLL 1 (' not in best
  assert "The best ranking of errors is GRAM's (AUSE 0.200, -0.30 dB)" in best
  recal = '\n'.join(rep.recal_answer(results, losses, seeds, folders))
  assert 'for GRAM, beta-NLL 1, Faithful' in recal and 'Why not' not in recal
  results = _study_results({'gram': -0.3, 'beta_nll_1': 0.0,
                            'faithful': 0.0}, {**covs, 'gram': 0.80})
  recal = '\n'.join(rep.recal_answer(results, losses, seeds, folders))
  assert 'not for GRAM (Set5 0.800)' in recal and 'Why not' in recal
  table = rep.table_one(results, losses, seeds, folders)
  row = next(l for l in table.splitlines() if l.startswith('| GRAM |'))
  assert row.split(' | ')[1:] == ['29.70 ±0.01', '0.8000 ±0.0000',
                                  '-0.30 ±0.00 |']


def test_reproduce_counts_the_steps_a_run_skipped(tmp_path):
  rep = study()
  rows = [{'step': 100, 'loss': 0.1},
          {'step': 200, 'skipped_steps': 1, 'first_skipped_step': 150},
          {'step': 300, 'skipped_steps': 3, 'first_skipped_step': 150},
          {'step': 300, 'val/set5/psnr': 20.0}]
  (tmp_path / 'metrics.jsonl').write_text(
      '\n'.join(json.dumps(r) for r in rows) + '\n')
  assert rep.skipped_steps(tmp_path) == (3, 150)
  (tmp_path / 'metrics.jsonl').write_text(json.dumps(rows[0]) + '\n')
  assert rep.skipped_steps(tmp_path) == (0, -1)


def test_reproduce_leaves_collapsed_runs_out_and_names_them():
  rep = study()
  seeds, folders, losses = [0, 1, 2], ['Set5'], ['mse', 'mle', 'gram']
  results = _study_results({'gram': -0.3, 'mle': -1.0},
                           {'gram': 0.9, 'mle': 0.9},
                           collapse={('mle', 1)})
  assert rep.alive(results, 'mle', seeds) == [0, 2]
  # At bicubic's level is poor, not collapsed (28 dB here).
  results['mle'][0]['folders']['Set5'] = dict(
      results['mle'][0]['folders']['Set5'], psnr=27.9)
  assert rep.alive(results, 'mle', seeds) == [0, 2]
  results['mle'][0]['folders']['Set5']['psnr'] = 28.99  # As built.
  (stability,) = rep.stability_answer(results, losses, seeds, folders)
  assert 'MLE 1 of 3 (seed 1: Set5 10.00 dB)' in stability
  assert 'Every run of MSE, GRAM converged' in stability
  order = rep.cost_answer(results, losses, seeds, folders)[1]
  # The collapsed run would make MLE -13 dB from MSE; it is left out.
  assert ("MLE (the plain NLL) is -1.00 ±0.00 dB from MSE (its 2 run(s) "
          'that did not collapse) and below GRAM in 2 of 2') in order
  table = rep.table_one(results, losses, seeds, folders)
  assert '| MLE (2 of 3 seeds) | 29.00 ±0.01 |' in table
  per_seed = rep.per_seed_table(results, losses, seeds, folders)
  assert '10.00 (collapsed)' in per_seed
  quality = rep.quality_table(results, losses, seeds, 'Set5', 'rgb')
  mle_row = next(l for l in quality.splitlines() if l.startswith('| MLE'))
  assert mle_row.split('|')[7].strip() == '0.750 ±0.000'  # cov90, 2 runs.
  # Every seed collapsed: the model drops out of the answers.
  results = _study_results({'gram': -0.3, 'mle': -1.0},
                           {'gram': 0.9, 'mle': 0.9},
                           collapse={('mle', s) for s in seeds})
  assert rep.likelihood(results, losses, seeds) == ['gram']
  cost = '\n'.join(rep.cost_answer(results, losses, seeds, folders))
  assert 'MLE' not in cost
  assert '| MLE (every seed collapsed) |' in rep.table_one(
      results, losses, seeds, folders)
  (stability,) = rep.stability_answer(
      _study_results({'gram': -0.3}, {'gram': 0.9}), ['mse', 'gram'], seeds,
      folders)
  assert 'none collapsed' in stability
  # A variance head whose sigma underflowed counts as collapsed too.
  results = _study_results({'gram': -0.3}, {'gram': 0.9})
  results['gram'][2]['uncertainty_error'] = 'sigma must be > 0 everywhere'
  assert rep.alive(results, 'gram', seeds) == [0, 1]


def test_reproduce_script_is_short_and_loads():
  """The study script is a short one over library APIs (its page lives in
  benchmarks/study_*.py) and imports cleanly."""
  script = REPO / 'benchmarks' / 'reproduce_cpu_scale.py'
  assert len(script.read_text().splitlines()) < 300
  rep = load('reproduce_cpu_scale')
  assert rep.NAMES['gram'] == 'GRAM' and callable(rep.evaluate_model)
