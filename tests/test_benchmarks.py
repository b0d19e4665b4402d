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
  from benchmarks import study_answers, study_page, study_stats, study_tables  # pylint: disable=g-import-not-at-top
  return types.SimpleNamespace(**{**vars(study_stats), **vars(study_tables),
                                  **vars(study_answers), **vars(study_page)})


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


def _study_results(gaps, seeds=(0, 1, 2), folders=('Set5',), wobble=0.01,
                   collapse=(), cov_in=0.88, crc_risk=0.09):
  """Synthetic study results in reproduce_cpu_scale's shape: ``gaps[loss]``
  = PSNR minus MSE's (dB), plus ``wobble`` times -1, 0 or 1 in an order
  that differs between losses (so paired differences vary); the runs ``(loss, seed)`` in
  ``collapse`` have a rising training loss. ``cov_in``: coverage_90 after
  sigma scaling on the calibration images; ``crc_risk``: the split study's
  and the test sets' crc risk."""
  def quality(cov=0.75, ause=0.3, nll=3.0, mace=0.1):
    q = {'coverage_90': cov, 'coverage_50': 0.6, 'ause': ause, 'nll': nll,
         'mace': mace,
         'spearman': 0.5, 'auce': mace, 'mean_sigma': 8.0, 'rmse': 10.0}
    return {'rgb': q, 'y': dict(q)}
  interval = lambda risk: {'rgb': {
      'risk': risk, 'frac_images_risk_le_alpha': 0.6, 'coverage': 1 - risk,
      'mean_halfwidth_grey': 20.0, 'constant_width': {'risk': risk}}}
  results = {'bicubic': {f: {'psnr': 28.0, 'ssim': 0.8} for f in folders}}
  for i, (loss, g) in enumerate({'mse': 0.0, **gaps}.items()):
    results[loss] = {}
    for s in seeds:
      psnr = 30.0 + g + wobble * ((s + i) % 3 - 1)
      entry = {'psnr': psnr, 'ssim': 0.8}
      run = {'training': {'collapsed': 'its training PSNR did not rise'
                          if (loss, s) in collapse else None,
                          'psnr_first_tenth': 20.0, 'psnr_last_tenth': 30.0,
                          'dropped_steps': 0}}
      if loss != 'mse':
        entry.update(uncertainty=quality(),
                     uncertainty_sigma_scaling=quality(0.9, mace=0.01),
                     uncertainty_isotonic=quality(0.9, mace=0.005),
                     interval_crc=interval(crc_risk),
                     error_channel_correlation=0.6, ideal_scale_rgb=1.3)
        cal = dict(entry, uncertainty_sigma_scaling=quality(cov_in),
                   interval_crc=interval(0.08))
        run.update(
            refused={'rcps': 'rcps cannot certify a risk of 0.1'},
            calibration_images=cal,
            calibration={'sigma_scaling': {'values': {'rgb': {'scale': 1.2}}}},
            conformal={'alpha': 0.1, 'delta': 0.1, 'splits': 100,
                       'calibration_images': 10, 'test_images': 10,
                       'crc': {'mean_risk': crc_risk,
                               'frac_risk_le_alpha': 0.6,
                               'mean_halfwidth_grey': 20.0 + s},
                       'rcps': {'uncertified_splits': 100},
                       'constant_width': {'mean_risk': crc_risk,
                                          'frac_risk_le_alpha': 0.6,
                                          'mean_halfwidth_grey': 30.0}},
            curves={w: {'raw': list(np.linspace(0, 0.9, 99)),
                        'sigma_scaling': list(np.linspace(0.01, 0.99, 99))}
                    for w in ('calibration_images', *folders)})
      run['folders'] = {f: entry for f in folders}
      results[loss][s] = run
  return results


def test_collapse_rule_reads_training_signals_only(tmp_path):
  from benchmarks import study_stats  # pylint: disable=g-import-not-at-top
  def signals(psnr, losses=None, **extra):
    losses = losses or [0.1] * len(psnr)
    rows = [{'step': 100 * (i + 1), 'loss': l, 'psnr': p}
            for i, (l, p) in enumerate(zip(losses, psnr))]
    rows.append({'step': 1500, 'val/heldout/psnr': 10.0})  # Not read.
    if extra:
      rows.append({'step': 100 * len(psnr), **extra})
    (tmp_path / 'metrics.jsonl').write_text(
        '\n'.join(json.dumps(r) for r in rows) + '\n')
    return study_stats.training_signals(tmp_path, 3000)
  rising = list(np.linspace(20.0, 30.0, 30))
  # A loss that rises while PSNR does (GRAM's reweighted loss can): fine.
  got = signals(rising, losses=list(np.linspace(-0.03, -0.01, 30)))
  assert got['collapsed'] is None and got['logged'] == 30
  assert got['psnr_first_tenth'] == pytest.approx(np.mean(rising[:3]))
  assert got['psnr_last_tenth'] == pytest.approx(np.mean(rising[-3:]))
  assert got['loss_first_tenth'] == pytest.approx(np.mean(
      np.linspace(-0.03, -0.01, 30)[:3]))
  assert 'did not rise' in signals(rising[::-1])['collapsed']
  assert 'not finite' in signals(
      rising, losses=[0.1] * 29 + [float('inf')])['collapsed']
  # 30 dropped steps are 1 % of 3000: allowed; 31 are not.
  assert signals(rising, skipped_steps=30,
                 first_skipped_step=7)['collapsed'] is None
  got = signals(rising, skipped_steps=31, first_skipped_step=7)
  assert got['collapsed'] == ('the guard dropped 31 of 3000 steps (the '
                              'first at step 7)')
  assert got['dropped_steps'] == 31 and got['first_dropped_step'] == 7


def test_paired_interval_is_students_t():
  from benchmarks import study_stats  # pylint: disable=g-import-not-at-top
  d = study_stats.Paired((1.0, 2.0, 3.0))
  # t(0.975, 2) = 4.302653 (a printed table); sd = 1.
  assert d.half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
  assert not d.measured and d.verdict('up', 'down') == 'no difference measured'
  assert d.text('dB') == '+2.00 [-0.48, +4.48] dB'
  d = study_stats.Paired((-1.0, -1.1, -0.9))
  assert d.measured and d.verdict('up', 'down') == 'down'
  assert 'no interval' in study_stats.Paired((1.0,)).text()
  assert study_stats.Paired((0.0, 0.0, 0.0)).verdict(
      'up', 'down') == 'identical in every seed'
  # The interval covers a true mean of 0 in 95 % of normal samples of 3.
  rng = np.random.default_rng(0)
  hits = np.mean([not study_stats.Paired(tuple(rng.normal(size=3))).measured
                  for _ in range(4000)])
  assert 0.94 <= hits <= 0.96


def test_study_answers_claim_only_what_the_intervals_resolve():
  rep = study()
  seeds, folders = [0, 1, 2], ['Set5']
  losses = ['mse', 'mle', 'gram', 'beta_nll_1', 'faithful']
  results = _study_results({'mle': -1.0, 'gram': -0.3, 'beta_nll_1': -0.28,
                            'faithful': 0.001}, wobble=0.01)
  cost = '\n'.join(rep.cost(results, losses, seeds, folders))
  assert 'GRAM - MSE: -0.30 [' in cost and '(GRAM lower, 3 seeds)' in cost
  assert 'MLE - GRAM: -0.70 [' in cost and '(MLE lower' in cost
  # 0.001 dB against a seed wobble of 0.02: not resolved.
  assert 'Faithful - MSE: +0.00 [' in cost
  assert 'Faithful - MSE' in cost and (
      cost.split('Faithful - MSE')[1].split(')')[0].count(
          'no difference measured') == 1)
  table = rep.table_one(results, losses, seeds, folders)
  row = next(l for l in table.splitlines() if l.startswith('| GRAM |'))
  assert row.split(' | ')[1:3] == ['29.70 ±0.01', '0.8000 ±0.0000']
  # Shape or shift: the in-sample coverage decides which is said.
  calib = rep.calibration(results, losses, seeds, folders)[0]
  assert 'misses 0.9 even on the images it was fitted on' in calib
  assert 'the central 50 % interval covers 0.600-0.600' in calib
  calib = rep.calibration(_study_results({'gram': -0.3}, cov_in=0.9),
                          ['mse', 'gram'], seeds, folders)[0]
  assert 'there the Gaussian shape holds' in calib
  conf = '\n'.join(rep.conformal(results, losses, seeds, folders))
  # n = 10 at alpha 0.1: the calibration risk must be <= 0.01.
  assert '(alpha(n+1) - 1)/n = 0.010 with n = 10' in conf
  assert 'too loose' in conf                 # rcps certified nothing.
  assert ('Fitted on all 20 calibration images it certified nothing in 12 '
          'of 12 runs') in conf
  assert 'GRAM on Set5: risk 0.090 ±0.000, <= alpha for 3 of 3 seeds' in conf
  few = _study_results({'gram': -0.3})
  for s in seeds:
    del few['gram'][s]['conformal']
    few['gram'][s]['conformal_error'] = 'heldout[5:]: needs 18 images'
  assert rep.conformal(few, ['mse', 'gram'], seeds, folders) == [
      '- **Conformal split study:** not made (heldout[5:]: needs 18 images).']
  # Constant width 30 against crc 20, 21, 22: sigma narrows it by 9.
  assert 'GRAM +9.0 [' in conf and 'sigma narrows the interval' in conf


def test_study_leaves_collapsed_runs_out_and_names_them():
  rep = study()
  seeds, folders, losses = [0, 1, 2], ['Set5'], ['mse', 'mle', 'gram']
  results = _study_results({'mle': -1.0, 'gram': -0.3},
                           collapse={('mle', 1)})
  assert rep.alive(results, 'mle', seeds) == [0, 2]
  (stability,) = rep.stability(results, losses, seeds, folders)
  assert 'MLE seed 1: its training PSNR did not rise' in stability
  assert 'training signals only' in stability
  table = rep.table_one(results, losses, seeds, folders)
  assert '| MLE (2 of 3 seeds) |' in table
  per_seed = rep.per_seed_table(results, losses, seeds, folders)
  assert 'its training PSNR did not rise' in per_seed
  cost = '\n'.join(rep.cost(results, losses, seeds, folders))
  assert 'MLE - MSE: -1.0' in cost and '2 seeds)' in cost
  results = _study_results({'mle': -1.0, 'gram': -0.3},
                           collapse={('mle', s) for s in seeds})
  assert rep.likelihood(results, losses, seeds) == ['gram']
  assert '| MLE (every seed collapsed) |' in rep.table_one(
      results, losses, seeds, folders)
  # A variance head whose sigma is unusable counts as collapsed too.
  results = _study_results({'gram': -0.3})
  results['gram'][2]['uncertainty_error'] = 'sigma must be > 0 everywhere'
  assert rep.alive(results, 'gram', seeds) == [0, 1]


def test_study_page_writes_its_tables_json_and_figures(tmp_path):
  rep = study()
  from configs import cpu_scale  # pylint: disable=g-import-not-at-top
  seeds, folders, losses = [0, 1, 2], ['Set5'], ['mse', 'gram', 'faithful']
  results = _study_results({'gram': -0.3, 'faithful': 0.0})
  run = rep.Run(
      command='python benchmarks/reproduce_cpu_scale.py',
      config_path='configs/cpu_scale.py', config=cpu_scale.get_config(),
      variants=cpu_scale.VARIANTS, train_dir='SunHays80',
      calibrate_on='heldout[5:]', shortened=False, losses=losses,
      seeds=seeds, names=folders,
      walls={(l, s): 100.0 for l in losses for s in seeds},
      trained_at={(l, s): 'abc1234' for l in losses for s in seeds},
      eval_s=10.0, eval_made_s=300.0, total_s=20.0, n_params=1000)
  out = tmp_path / 'results.md'
  (tmp_path / 'results_figures').mkdir()
  (tmp_path / 'results_figures' / 'reliability_Set5_raw.png').write_bytes(
      b'an older page\'s')
  fig_dir = rep.write_page(results, run, out)
  page = out.read_text()
  assert 'evaluation 5m00s when made (about 0m33s per model' in page
  assert '## Conformal intervals' in page and 'Faithful - GRAM' in page
  assert 'AUCE' not in page.split('## Setup')[1].replace(
      'AUCE (the same quantity on another grid) is in the JSON only', '')
  raw = json.loads(out.with_suffix('.json').read_text())
  assert raw['models']['gram']['0']['training']['collapsed'] is None
  assert raw['trained_at']['gram_seed0'] == 'abc1234'
  pictures = sorted(p.name for p in fig_dir.iterdir())
  assert pictures == ['conformal.png', 'reliability_Set5.png',
                      'reliability_calibration_images.png']
  for name in pictures:
    assert f'results_figures/{name}' in page


def test_reproduce_script_is_short_and_loads():
  """The study script is a short one over library APIs (its page lives in
  benchmarks/study_*.py) and imports cleanly."""
  script = REPO / 'benchmarks' / 'reproduce_cpu_scale.py'
  assert len(script.read_text().splitlines()) < 300
  rep = load('reproduce_cpu_scale')
  assert rep.NAMES['gram'] == 'GRAM'
  assert callable(rep.study_eval.evaluate_model)
