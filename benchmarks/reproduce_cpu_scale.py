"""Table I at CPU scale, and what GRAM costs and buys: trains Table I's
losses and their siblings (``configs/cpu_scale.py``'s ten variants) over
three seeds, evaluates them with the literature's conventions before and
after recalibration, and writes docs/results.md.

    python benchmarks/reproduce_cpu_scale.py

(defaults: seeds 0, 1 and 2, training on ../shared/data/SunHays80 less the
ten images ``data.holdout`` keeps out, which fit each model's
recalibrations; evaluation on ../shared/data/Set5 and Set14; runs in
runs/cpu_scale/; report in docs/results.md plus docs/results.json and
docs/results_figures/). Each training is ``python -m gramjax.main`` in a
subprocess; run the script again after an interruption and finished models
are kept, an unfinished one resumes from its last checkpoint, and finished
evaluations are kept too (``--reevaluate`` redoes them). ``--steps=N``
shortens every training (a smoke test; the report then says so).
``--train_only`` stops after training.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = {'mse': 'MSE', 'mle': 'MLE', 'gram': 'GRAM',
         'gram_255': 'GRAM [0,255]', 'loss_rescale': 'Loss-rescale',
         'beta_nll': 'beta-NLL 0.5', 'beta_nll_1': 'beta-NLL 1',
         'faithful': 'Faithful', 'gram_warmup': 'GRAM+warm-up',
         'gram_noise_init': 'GRAM+noise init'}


def sh(*cmd: str) -> str:
  try:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
  except OSError:
    return ''


def hardware() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  import jax  # pylint: disable=g-import-not-at-top
  return (f'{cpu}, {os.cpu_count()} cores visible, '
          f'{jax.devices()[0].platform} backend, Python '
          f'{platform.python_version()}, jax {jax.__version__}')


def fmt_s(seconds: float) -> str:
  seconds = int(round(seconds))
  return (f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600
          else f'{seconds // 60}m{seconds % 60:02d}s')


def train(loss: str, seed: int, workdir: pathlib.Path, args
          ) -> tuple[float, str]:
  """Trains (or resumes) one model; returns its training wall time in
  seconds and the commit it was trained at, as recorded when it finished
  (kept across reruns)."""
  record = workdir / 'reproduce_wall.json'
  if record.exists():
    r = json.loads(record.read_text())
    return r['train_s'], r.get('commit', 'unknown')
  cmd = [sys.executable, '-m', 'gramjax.main',
         f'--config={args.config}:{loss}', f'--workdir={workdir}',
         f'--config.seed={seed}', f'--config.data.train_dir={args.train_dir}',
         '--config.data.sample_images=']
  if args.steps:
    cmd += [f'--config.total_steps={args.steps}',
            f'--config.checkpoint_every={max(1, args.steps // 2)}',
            f'--config.log_every={max(1, args.steps // 4)}',
            '--config.optimizer.lr_boundaries='
            f'({max(1, args.steps * 4 // 5)},)']
  workdir.parent.mkdir(parents=True, exist_ok=True)
  start = time.time()
  with open(workdir.parent / f'{workdir.name}.log', 'a') as log:
    rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                        check=False).returncode
  if rc != 0:
    sys.exit(f'error: training {loss} seed {seed} failed (exit {rc}); see '
             f'{workdir.parent / (workdir.name + ".log")}. Run this script '
             'again to resume.')
  wall = time.time() - start
  commit = sh('git', 'rev-parse', '--short', 'HEAD') or 'unknown'
  record.write_text(json.dumps({'train_s': wall, 'commit': commit}))
  return wall, commit


def skipped_steps(workdir: pathlib.Path) -> tuple[int, int]:
  """(steps the NaN guard skipped, the first of them; -1 if none), from
  the run's metrics.jsonl (written only under ``nan_policy='skip'``)."""
  rows = [json.loads(line) for line in
          (workdir / 'metrics.jsonl').read_text().splitlines() if line]
  counted = [r for r in rows if 'skipped_steps' in r]
  if not counted:
    return 0, -1
  return counted[-1]['skipped_steps'], counted[-1]['first_skipped_step']


def mean_sd(values: list[float]) -> tuple[float, float]:
  return (statistics.fmean(values),
          statistics.stdev(values) if len(values) > 1 else 0.0)


def pm(values: list[float], fmt: str = '.2f', signed: bool = False) -> str:
  """'mean ±sd' over seeds ('+' on a positive mean if ``signed``)."""
  m, sd = mean_sd(values)
  return f'{m:{"+" if signed else ""}{fmt}} ±{sd:{fmt}}'


# ---------------------------------------------------------- evaluation --

# Bump when what evaluate_model stores changes: cached evaluations of an
# older version are redone.
EVAL_VERSION = 1


def evaluate_model(workdir: pathlib.Path, folders, scale: int,
                   fresh: bool) -> dict:
  """One trained model: PSNR/SSIM and (for likelihood models) every
  uncertainty figure on each test folder, before and after each
  recalibration method fitted on the images its training held out
  (``config.data.holdout``), plus the reliability curves for the figures.
  Kept in WORKDIR/study_eval.json, reused while the checkpoint, folders and
  EVAL_VERSION are the same (``fresh`` redoes it)."""
  from gramjax.evaluation import protocol as evaluation  # pylint: disable=g-import-not-at-top
  from gramjax.inference import predictor as inference  # pylint: disable=g-import-not-at-top
  from gramjax.metrics import recalibration  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  latest = max(int(p.name) for p in (workdir / 'checkpoints').iterdir()
               if p.name.isdigit())
  key = {'version': EVAL_VERSION, 'step': latest,
         'folders': [str(f.path) for f in folders]}
  cache = workdir / 'study_eval.json'
  if cache.exists() and not fresh:
    saved = json.loads(cache.read_text())
    if saved.get('key') == key:
      return saved['result']
  predictor = inference.load(workdir, latest)
  try:
    entries, per_image = evaluation.evaluate_folders(
        folders, scale=scale, convention='standard', predictor=predictor,
        quiet=True)
    result = {'folders': entries, 'curves': {}}
  except ValueError as e:  # A diverged variance head: sigma underflows to 0.
    if 'must be > 0' not in str(e):
      raise
    config = predictor.config.copy_and_resolve_references()
    config.loss.name = 'mse'   # The mean alone: PSNR and SSIM.
    entries, per_image = evaluation.evaluate_folders(
        folders, scale=scale, convention='standard',
        predictor=dataclasses.replace(predictor, config=config), quiet=True)
    result = {'folders': entries, 'curves': {}, 'uncertainty_error': str(e)}
  if 'uncertainty_error' not in result and predictor.predicts_uncertainty:
    fitted_on, images = evaluation.calibration_images('heldout', predictor)
    evaluation.check_disjoint(fitted_on, images, folders)
    calib = evaluation.folder_results(
        evaluation.Folder('calibration', pathlib.Path(fitted_on), images),
        scale=scale, convention='standard', predictor=predictor, quiet=True,
        pool_rate=evaluation.pool_rate_for(images))
    pairs = {c: evaluation.pooled(calib, c)
             for c in recalibration.CHANNEL_SPACES}
    result['calibration'] = {}
    for method in recalibration.METHODS:
      recal = recalibration.fit_channels(
          method, pairs, fitted_on=fitted_on, images=[p.name for p in images],
          step=predictor.step, y_correlation=1.0)
      result['calibration'][method] = evaluation.calibration_summary(recal)
      for f in folders:
        entry, results = entries[f.name], per_image[f.name]
        entry[f'uncertainty_{method}'] = evaluation.calibrated_entry(
            results, recal, 1.0, entry['uncertainty']['pooled_share'],
            before=entry['uncertainty'])
        err, sig = evaluation.pooled(results, 'rgb')
        curves = result['curves'].setdefault(f.name, {})
        if method == recalibration.METHODS[0]:
          raw = recalibration.ChannelFit(1.0)
          curves['raw'] = recalibration.calibration_curve(raw, err,
                                                          sig).observed
          # The factor that would have calibrated this folder itself.
          entry['ideal_scale_rgb'] = float(np.sqrt(np.mean((err / sig)**2)))
        curves[method] = recalibration.calibration_curve(
            recal.values['rgb'], err, sig).observed
    result['curves'] = {f: {k: [float(x) for x in v] for k, v in c.items()}
                        for f, c in result['curves'].items()}
  cache.write_text(json.dumps({'key': key, 'result': result}))
  return result


# -------------------------------------------------------------- tables --

def psnr(results, loss, seed, folder, key='psnr') -> float:
  return results[loss][seed]['folders'][folder][key]


# dB below bicubic: a run that ends lower on a test set has collapsed. A
# converged but poor model (the plain NLL here) lands about at bicubic; a
# diverged one many dB below.
COLLAPSE_DB = 1.0


def collapsed(results, loss, seed) -> bool:
  """A run that ends more than COLLAPSE_DB below bicubic on a test set,
  or whose sigma underflows to 0, has collapsed (its training diverged): it
  is left out of every mean, figure and answer."""
  bic = results['bicubic']
  run = results[loss][seed]
  return 'uncertainty_error' in run or any(
      e['psnr'] < bic[f]['psnr'] - COLLAPSE_DB
      for f, e in run['folders'].items())


def alive(results, loss, seeds) -> list:
  """The seeds whose run of ``loss`` did not collapse."""
  return [s for s in seeds if not collapsed(results, loss, s)]


def diffs(results, a, b, seeds, folder, key='psnr') -> list[float]:
  """Per seed: a - b, both trained with that seed (seeds where either
  collapsed left out)."""
  both = [s for s in alive(results, a, seeds) if s in alive(results, b, seeds)]
  return [psnr(results, a, s, folder, key) - psnr(results, b, s, folder, key)
          for s in both]


def table_one(results, losses, seeds, folders) -> str:
  """Rows = models (Bicubic first); per dataset the PSNR/SSIM mean ±sd over
  seeds and the mean per-seed difference from MSE."""
  head = ' | '.join(f'{f} PSNR | {f} SSIM | {f} vs MSE' for f in folders)
  lines = [f'| Model | {head} |',
           '| --- |' + ' ---: | ---: | ---: |' * len(folders)]
  bic = results['bicubic']
  lines.append('| Bicubic | ' + ' | '.join(
      f'{bic[f]["psnr"]:.2f} | {bic[f]["ssim"]:.4f} | ' +
      (f'{bic[f]["psnr"] - statistics.fmean(psnr(results, "mse", s, f) for s in alive(results, "mse", seeds)):+.2f}'
       if 'mse' in losses else '') for f in folders) + ' |')
  for loss in losses:
    ok = alive(results, loss, seeds)
    if not ok:
      lines.append(f'| {NAMES[loss]} (every seed collapsed) |'
                   + ' |' * (3 * len(folders)))
      continue
    cells = []
    for f in folders:
      cells.append(pm([psnr(results, loss, s, f) for s in ok]))
      cells.append(pm([psnr(results, loss, s, f, 'ssim') for s in ok],
                      '.4f'))
      cells.append('' if loss == 'mse' or 'mse' not in losses else
                   pm(diffs(results, loss, 'mse', seeds, f), signed=True))
    label = NAMES[loss] + (f' ({len(ok)} of {len(seeds)} seeds)'
                           if len(ok) < len(seeds) else '')
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def per_seed_table(results, losses, seeds, folders) -> str:
  lines = ['| Model | ' + ' | '.join(f'{f} s{s}' for f in folders
                                     for s in seeds) + ' |',
           '| --- |' + ' ---: |' * (len(folders) * len(seeds))]
  for loss in losses:
    lines.append(f'| {NAMES[loss]} | ' + ' | '.join(
        f'{psnr(results, loss, s, f):.2f}'
        + (' (collapsed)' if collapsed(results, loss, s) else '')
        for f in folders for s in seeds)
        + ' |')
  return '\n'.join(lines)


def likelihood(results, losses, seeds) -> list[str]:
  """The models with a trained variance head (and a run that did not
  collapse)."""
  return [l for l in losses if any(
      'uncertainty' in next(iter(results[l][s]['folders'].values()))
      for s in alive(results, l, seeds))]


def figure(results, loss, seeds, folder, block, channel, key) -> list[float]:
  """One uncertainty figure per seed whose run did not collapse
  (``block``: 'uncertainty', 'uncertainty_sigma_scaling' or
  'uncertainty_isotonic')."""
  return [results[loss][s]['folders'][folder][block][channel][key]
          for s in alive(results, loss, seeds)]


QUALITY = [('NLL', 'uncertainty', 'nll', '.2f'),
           ('AUSE', 'uncertainty', 'ause', '.3f'),
           ('Spearman', 'uncertainty', 'spearman', '.3f'),
           ('AUCE', 'uncertainty', 'auce', '.3f'),
           ('MACE', 'uncertainty', 'mace', '.3f'),
           ('cov90', 'uncertainty', 'coverage_90', '.3f'),
           ('sigma/RMSE', None, None, '.2f'),
           ('NLL (s)', 'uncertainty_sigma_scaling', 'nll', '.2f'),
           ('MACE (s)', 'uncertainty_sigma_scaling', 'mace', '.3f'),
           ('cov90 (s)', 'uncertainty_sigma_scaling', 'coverage_90', '.3f'),
           ('MACE (iso)', 'uncertainty_isotonic', 'mace', '.3f'),
           ('cov90 (iso)', 'uncertainty_isotonic', 'coverage_90', '.3f')]


def quality_table(results, losses, seeds, folder, channel) -> str:
  """Rows = likelihood models; before, then after sigma scaling (s) and
  isotonic recalibration (iso), mean ±sd over seeds."""
  lines = ['| Model | ' + ' | '.join(q[0] for q in QUALITY) + ' |',
           '| --- |' + ' ---: |' * len(QUALITY)]
  for loss in likelihood(results, losses, seeds):
    cells = []
    for _, block, key, fmt in QUALITY:
      if key is None:
        vals = [a / b for a, b in zip(
            figure(results, loss, seeds, folder, 'uncertainty', channel,
                   'mean_sigma'),
            figure(results, loss, seeds, folder, 'uncertainty', channel,
                   'rmse'))]
      else:
        vals = figure(results, loss, seeds, folder, block, channel, key)
      cells.append(pm(vals, fmt))
    lines.append(f'| {NAMES[loss]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def scale_table(results, losses, seeds, folders) -> str:
  """The sigma-scaling factor fitted on the held-out images against the one
  each test set would have needed (RGB)."""
  lines = ['| Model | fitted s (held-out SunHays80) | ' + ' | '.join(
      f'ideal s on {f}' for f in folders) + ' |',
           '| --- | ---: |' + ' ---: |' * len(folders)]
  for loss in likelihood(results, losses, seeds):
    ok = alive(results, loss, seeds)
    fitted = [results[loss][s]['calibration']['sigma_scaling']['values']
              ['rgb']['scale'] for s in ok]
    ideal = [pm([results[loss][s]['folders'][f]['ideal_scale_rgb']
                 for s in ok]) for f in folders]
    lines.append(f'| {NAMES[loss]} | {pm(fitted)} | ' + ' | '.join(ideal)
                 + ' |')
  return '\n'.join(lines)


def y_table(results, losses, seeds, folders) -> str:
  """RGB against Y coverage_90 (full channel correlation, the default) and
  the measured correlation of the channel errors."""
  lines = ['| Model | ' + ' | '.join(
      f'{f} error corr. | {f} RGB cov90 | {f} Y cov90 | {f} Y cov90 (s)'
      for f in folders) + ' |',
           '| --- |' + ' ---: | ---: | ---: | ---: |' * len(folders)]
  for loss in likelihood(results, losses, seeds):
    cells = []
    for f in folders:
      cells.append(pm([results[loss][s]['folders'][f]
                       ['error_channel_correlation']
                       for s in alive(results, loss, seeds)]))
      cells.append(pm(figure(results, loss, seeds, f, 'uncertainty', 'rgb',
                             'coverage_90'), '.3f'))
      cells.append(pm(figure(results, loss, seeds, f, 'uncertainty', 'y',
                             'coverage_90'), '.3f'))
      cells.append(pm(figure(results, loss, seeds, f,
                             'uncertainty_sigma_scaling', 'y',
                             'coverage_90'), '.3f'))
    lines.append(f'| {NAMES[loss]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


# ------------------------------------------------------------- answers --

NOISE_FLOOR = 0.05    # dB: below this a PSNR difference is not claimed.


def gap(results, a, b, seeds, folders) -> tuple[float, float]:
  """Mean and seed sd of a - b (PSNR), pooled over folders and seeds."""
  return mean_sd([d for f in folders for d in diffs(results, a, b, seeds, f)])


def real(m: float, sd: float) -> bool:
  """A difference worth a word: beyond the noise floor and its seed sd."""
  return abs(m) > max(NOISE_FLOOR, sd)


def cost_answer(results, losses, seeds, folders) -> list[str]:
  """What GRAM's PSNR cost is here and what causes it."""
  if not {'mse', 'gram'} <= set(losses):
    return ['(Needs MSE and GRAM.)']
  g = lambda a, b='mse': gap(results, a, b, seeds, folders)
  fmt = lambda ms: f'{ms[0]:+.2f} ±{ms[1]:.2f} dB'
  per = ', '.join(
      f'{f} {pm(diffs(results, "gram", "mse", seeds, f), signed=True)} dB'
      for f in folders)
  n_gram = len(alive(results, 'gram', seeds))
  out = [f'- **Cost.** GRAM is {fmt(g("gram"))} from MSE over '
         f'{len(folders)} set(s) and {n_gram} seeds ({per}; the paper: '
         'about -0.05 to -0.1 dB at full scale).']
  # A model counts where at least one of its runs did not collapse.
  have = lambda *ls: all(l in losses and alive(results, l, seeds)
                         for l in ls)
  if have('mle'):
    n_mle = len(alive(results, 'mle', seeds))
    mle, gram = g('mle'), g('gram')
    pairs = [(f, s) for f in folders for s in seeds
             if s in alive(results, 'mle', seeds)
             and s in alive(results, 'gram', seeds)]
    below = sum(psnr(results, 'mle', s, f) < psnr(results, 'gram', s, f)
                for f, s in pairs)
    out.append(
        f'- **The paper\'s ordering.** MLE (the plain NLL) is {fmt(mle)} '
        'from MSE' + (f' (its {n_mle} run(s) that did not collapse)'
                      if n_mle < len(seeds) else '')
        + f' and below GRAM in {below} of {len(pairs)} (set, seed) '
        'pairs' + (f': GRAM recovers {1 - gram[0] / mle[0]:.0%} of what the '
                   'NLL loses.' if mle[0] < 0 else '.'))
  if have('faithful', 'beta_nll_1'):
    faithful, beta1, gram = g('faithful'), g('beta_nll_1'), g('gram')
    same_as_gram = abs(beta1[0] - gram[0]) <= max(NOISE_FLOOR, beta1[1],
                                                   gram[1])
    out.append(
        f'- **Cause.** beta-NLL with beta = 1, whose gradient for the mean '
        f'is the MSE\'s (up to a factor 1/2 that Adam ignores), is '
        f'{fmt(beta1)} from MSE'
        + (', the same as GRAM' if same_as_gram else
           f', {"less" if beta1[0] > gram[0] else "more"} than GRAM')
        + f'; the faithful model, whose trunk gets only the MSE\'s gradient, '
        f'is {fmt(faithful)} from MSE. '
        + ('So the cost is not the attention mask reweighting the mean\'s '
           'gradient: it comes from the variance head\'s gradient flowing '
           'into the trunk the mean shares; stopping that gradient '
           '(faithful) removes it.'
           if real(*beta1) and not real(*faithful) else
           'The variance head\'s gradient into the shared trunk does not '
           'explain the cost here.' if not real(*beta1) else
           'Even the faithful model loses PSNR here, so the shared trunk '
           'is not the whole story.'))
  for name, label in (('gram_warmup', 'an MSE warm-up of the first third'),
                      ('gram_noise_init', 'the log-variance head started at '
                       'the data\'s noise level (s = 2 ln(10/127.5))'),
                      ('gram_255', 'the mask computed in [0, 255] units')):
    if have(name):
      d = g(name, 'gram')
      out.append(f'- **GRAM with {label}**: {fmt(d)} against GRAM, '
                 + ('a real difference.' if real(*d) else
                    'within seed noise.'))
  return out


def stability_answer(results, losses, seeds, folders) -> list[str]:
  """Which runs collapsed (ended below bicubic), per model."""
  bad = {l: [s for s in seeds if collapsed(results, l, s)] for l in losses}
  if not any(bad.values()):
    return [f'- **Stability.** No run of any model ended more than '
            f'{COLLAPSE_DB:g} dB below bicubic on {" and ".join(folders)} '
            'or predicted a sigma of 0: none collapsed.']
  listing = '; '.join(
      f'{NAMES[l]} {len(b)} of {len(seeds)} (seed ' + ', '.join(
          f'{s}: ' + ', '.join(f'{f} {psnr(results, l, s, f):.2f} dB'
                               for f in folders) for s in b) + ')'
      for l, b in bad.items() if b)
  fine = [NAMES[l] for l, b in bad.items() if not b]
  bicubic = ', '.join(f'{f} {results["bicubic"][f]["psnr"]:.2f} dB'
                      for f in folders)
  return [f'- **Stability.** Runs that collapsed, i.e. ended more than '
          f'{COLLAPSE_DB:g} dB below bicubic ({bicubic}) on a set or '
          f'predicted a sigma of 0: {listing}. Every run of {", ".join(fine) or "no other model"} '
          'converged. Collapsed runs are left out of every mean, figure and '
          'answer on this page (their PSNR is in the per-seed table, all '
          'their numbers in the JSON).']


def best_answer(results, losses, seeds, folders) -> list[str]:
  """Which method gives the best uncertainty at equal PSNR: the models no
  other beats on both PSNR and AUSE (ranking, which no recalibration
  changes), from the highest PSNR down."""
  if 'mse' not in losses:
    return ['(Needs MSE.)']
  models = likelihood(results, losses, seeds)
  score = lambda l, block, key: statistics.fmean(
      v for f in folders
      for v in figure(results, l, seeds, f, block, 'rgb', key))
  point = {l: (gap(results, l, 'mse', seeds, folders)[0],
               score(l, 'uncertainty', 'ause')) for l in models}
  front = [l for l in models if not any(
      point[o][0] >= point[l][0] and point[o][1] <= point[l][1]
      and point[o] != point[l] for o in models)]
  front.sort(key=lambda l: -point[l][0])
  best_ause = min(models, key=lambda l: point[l][1])
  listing = '; '.join(
      f'{NAMES[l]} (PSNR {point[l][0]:+.2f} dB, AUSE {point[l][1]:.3f}, '
      f'Spearman {score(l, "uncertainty", "spearman"):.3f}, NLL after '
      f'sigma scaling {score(l, "uncertainty_sigma_scaling", "nll"):.3f})'
      for l in front)
  return [f'- **Best uncertainty at a given PSNR.** No model beats these on '
          f'both PSNR (from MSE) and AUSE (means over sets and seeds, RGB): '
          f'{listing}. Every other model is worse on both than one of them. '
          f'The best ranking of errors is {NAMES[best_ause]}\'s '
          f'(AUSE {point[best_ause][1]:.3f}, {point[best_ause][0]:+.2f} dB); '
          f'at the PSNR of MSE, {NAMES[front[0]]}\'s AUSE is '
          f'{point[front[0]][1]:.3f}'
          + (f', {point[front[0]][1] / point[best_ause][1]:.1f}x the best: '
             'there, keeping the PSNR costs ranking quality.'
             if point[front[0]][1] > 1.2 * point[best_ause][1] else '.')]


def recal_answer(results, losses, seeds, folders) -> list[str]:
  """Whether recalibration removes the differences in calibration."""
  models = likelihood(results, losses, seeds)
  if not models:
    return []
  cov = lambda l, f, block: statistics.fmean(
      figure(results, l, seeds, f, block, 'rgb', 'coverage_90'))
  spread = lambda block, key: [statistics.fmean(
      v for f in folders for v in figure(results, l, seeds, f, block, 'rgb',
                                         key)) for l in models]
  within = {l: all(abs(cov(l, f, 'uncertainty_sigma_scaling') - 0.9) <= 0.03
                   for f in folders) for l in models}
  ok = [NAMES[l] for l in models if within[l]]
  bad = [f'{NAMES[l]} (' + ', '.join(
      f'{f} {cov(l, f, "uncertainty_sigma_scaling"):.3f}' for f in folders)
         + ')' for l in models if not within[l]]
  before = spread('uncertainty', 'mace')
  after = spread('uncertainty_sigma_scaling', 'mace')
  iso = spread('uncertainty_isotonic', 'mace')
  ause = spread('uncertainty', 'ause')
  rho = spread('uncertainty', 'spearman')
  out = [f'- **Coverage after recalibration.** RGB coverage of the 90 % '
         f'interval before: {min(cov(l, f, "uncertainty") for l in models for f in folders):.3f}'
         f' to {max(cov(l, f, "uncertainty") for l in models for f in folders):.3f}. '
         'After sigma scaling fitted on the ten held-out SunHays80 images, it '
         'is within 0.03 of 0.9 on ' + ' and '.join(folders) + ' for '
         + (', '.join(ok) if ok else 'no model')
         + (f'; not for {", ".join(bad)}' if bad else '') + '.']
  if bad:
    fitted = lambda l, s: (results[l][s]['calibration']['sigma_scaling']
                           ['values']['rgb']['scale'])
    ratio = ', '.join(f'{f} {statistics.fmean(results[l][s]["folders"][f]["ideal_scale_rgb"] / fitted(l, s) for l in models for s in alive(results, l, seeds)):.2f}x'
                      for f in folders)
    out.append(
        '  Why not: the factor that calibrates the held-out images is not '
        'the one each test set needs: on average over models and seeds the '
        f'test sets need {ratio} the held-out factor. Where that is far from '
        '1, the test set differs from the training photographs '
        '(the held-out SunHays80 images are JPEG photographs of outdoor '
        'scenes, like the training set; Set5 and Set14 are PNG images of '
        'other content) and a factor fitted on the held-out images cannot '
        'calibrate it; the table of fitted against ideal factors below gives '
        'them per model.')
  out.append(
      f'- **What is left.** MACE across the likelihood models spans '
      f'{min(before):.3f}-{max(before):.3f} before, '
      f'{min(after):.3f}-{max(after):.3f} after sigma scaling and '
      f'{min(iso):.3f}-{max(iso):.3f} after isotonic recalibration: '
      + ('recalibration removes most of the differences in calibration, so '
         'those were not real. '
         if max(after) - min(after) < 0.5 * (max(before) - min(before)) else
         'recalibration does not remove the differences in calibration. ')
      + f'What it cannot change is ranking: AUSE spans {min(ause):.3f}-'
      f'{max(ause):.3f} and Spearman {min(rho):.3f}-{max(rho):.3f}, the '
      'same before and after; those differences are the real ones.')
  return out


def reliability_figures(results, losses, seed, folders, fig_dir
                        ) -> list[tuple[str, pathlib.Path]]:
  """Per folder, the RGB reliability diagrams of seed ``seed``'s likelihood
  models before and after sigma scaling (matplotlib)."""
  from gramjax.reporting import figures  # pylint: disable=g-import-not-at-top
  from gramjax.metrics import uncertainty  # pylint: disable=g-import-not-at-top
  models = likelihood(results, losses, [seed])  # Not collapsed at seed.
  expected = list(1.0 - uncertainty.DEFAULT_ALPHAS)
  written = []
  for f in folders:
    for block, title in (('raw', 'before recalibration'),
                         ('sigma_scaling', 'after sigma scaling')):
      curves = {NAMES[l]: (expected, results[l][seed]['curves'][f][block])
                for l in models}
      path = figures.reliability_diagram(
          curves, fig_dir / f'reliability_{f}_{block}.png',
          title=f'{f}, RGB, {title}')
      written.append((f'Reliability, {f} (RGB), {title}, seed {seed}', path))
  return written


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--config', default='configs/cpu_scale.py')
  p.add_argument('--losses', default=','.join(NAMES))
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--train_dir', default='../shared/data/SunHays80')
  p.add_argument('--data', default='../shared/data/Set5,../shared/data/Set14')
  p.add_argument('--runs', default='runs/cpu_scale')
  p.add_argument('--out', default='docs/results.md')
  p.add_argument('--steps', type=int, default=0,
                 help='override total_steps (smoke test); 0: the config\'s')
  p.add_argument('--train_only', action='store_true',
                 help='train (or resume) every model, then stop')
  p.add_argument('--reevaluate', action='store_true',
                 help='redo every evaluation (else kept in each run\'s '
                 'study_eval.json)')
  args = p.parse_args()
  os.chdir(ROOT)
  losses = [l.strip() for l in args.losses.split(',') if l.strip()]
  bad = [l for l in losses if l not in NAMES]
  if bad:
    sys.exit(f'error: --losses: unknown {bad}; choose from {list(NAMES)}')
  seeds = [int(s) for s in args.seeds.split(',')]
  for path in [args.train_dir] + args.data.split(','):
    if not pathlib.Path(path).is_dir():
      sys.exit(f'error: {path}: no such folder (the reference images live in '
               '../shared/data beside the repository; pass --train_dir and '
               '--data to use others)')

  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('cfg', ROOT / args.config)
  cfg_mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(cfg_mod)
  config = cfg_mod.get_config(losses[0])
  if args.steps:  # As train() overrides them.
    config.total_steps = args.steps
    config.optimizer.lr_boundaries = (max(1, args.steps * 4 // 5),)

  commit = sh('git', 'rev-parse', '--short', 'HEAD') or 'unknown'
  dirty = bool(sh('git', 'status', '--porcelain', '--untracked-files=no'))
  started = time.time()
  runs = pathlib.Path(args.runs)
  # Every model has the same architecture: one persistent compilation cache
  # spares each evaluation (and training) recompiling per image shape.
  os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                        str((runs / '.jax_cache').resolve()))
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  jobs = [(l, s) for s in seeds for l in losses]
  walls, trained_at = {}, {}
  for i, (loss, seed) in enumerate(jobs, 1):
    done = list(walls.values())
    eta = ('' if not done else ' ETA ' + fmt_s(
        statistics.fmean(done) * (len(jobs) - i + 1)))
    print(f'[{i}/{len(jobs)}] training {loss} seed {seed} '
          f'({config.total_steps} steps){eta}', file=sys.stderr, flush=True)
    walls[(loss, seed)], trained_at[(loss, seed)] = train(
        loss, seed, runs / f'{loss}_seed{seed}', args)
    print(f'    {fmt_s(walls[(loss, seed)])}', file=sys.stderr, flush=True)
  if args.train_only:
    return

  from gramjax.evaluation import protocol as evaluation  # pylint: disable=g-import-not-at-top
  from gramjax.state import train_state as state_lib  # pylint: disable=g-import-not-at-top
  folders = evaluation.resolve_folders(args.data)
  names = [f.name for f in folders]
  results = {'bicubic': evaluation.evaluate_folders(
      folders, scale=config.model.scale, convention='standard',
      quiet=True)[0]}
  eval_start, eval_times = time.time(), []
  for i, (loss, seed) in enumerate(jobs, 1):
    eta = ('' if not eval_times else ' ETA ' + fmt_s(
        statistics.fmean(eval_times) * (len(jobs) - i + 1)))
    print(f'[{i}/{len(jobs)}] evaluating {loss} seed {seed}{eta}',
          file=sys.stderr, flush=True)
    t0 = time.time()
    results.setdefault(loss, {})[seed] = evaluate_model(
        runs / f'{loss}_seed{seed}', folders, config.model.scale,
        args.reevaluate)
    eval_times.append(time.time() - t0)
  eval_s = time.time() - eval_start

  out = pathlib.Path(args.out)
  fig_dir = out.parent / f'{out.stem}_figures'
  pictures = [f'![{title}]({os.path.relpath(path, out.parent)})'
              for title, path in reliability_figures(results, losses,
                                                     seeds[0], names,
                                                     fig_dir)]
  skipped = {(l, s): skipped_steps(runs / f'{l}_seed{s}') for l, s in jobs}
  skipped_runs = ', '.join(
      f'{NAMES[l]} seed {s}: {n} (the first at step {first})'
      for (l, s), (n, first) in skipped.items() if n)
  m = config.model
  params = state_lib.build(config).params
  import jax  # pylint: disable=g-import-not-at-top
  n_params = sum(x.size for x in jax.tree.leaves(params))
  cmd = 'python benchmarks/reproduce_cpu_scale.py' + ''.join(
      f' --{k}' if v is True else f' --{k}={v}'
      for k, v in vars(args).items() if v != p.get_default(k))
  variants = cfg_mod.VARIANTS
  doc = [
      '# Table I at CPU scale: what GRAM costs and buys',
      '',
      f'Produced by `{cmd}` from a clean checkout of commit `{commit}`'
      f'{" (with uncommitted changes!)" if dirty else ""} on '
      f'{datetime.date.today().isoformat()} (models trained at commit'
      f'{"s" if len(set(trained_at.values())) > 1 else ""} '
      f'{", ".join(f"`{c}`" for c in sorted(set(trained_at.values())))}); '
      'rerun that command to regenerate this page, its JSON (`' +
      out.with_suffix('.json').name + '`) and its pictures. Every number '
      'and every sentence below comes from that run.',
      '',
      '## Answers',
      '',
      *stability_answer(results, losses, seeds, names),
      *cost_answer(results, losses, seeds, names),
      *best_answer(results, losses, seeds, names),
      *recal_answer(results, losses, seeds, names),
      '',
      '## Setup',
      '',
      f'- Model: SRResNet x{m.scale}, {m.num_blocks} residual blocks x '
      f'{m.channels} channels, {m.first_kernel}x{m.first_kernel} first conv, '
      f'{m.head_kernel}x{m.head_kernel} heads, LeakyReLU({m.leaky_slope}), '
      f'{n_params / 1e6:.3f}M parameters (the paper: 16 x 64, 9x9 heads).',
      f'- Training: `{args.config}:<variant>`, {config.total_steps} steps'
      f'{" (shortened with --steps: a smoke test, not a result)" if args.steps else ""}'
      f', batches of {config.batch_size} random {config.data.crop_size}x'
      f'{config.data.crop_size} HR crops of the {args.train_dir} photos '
      f'except {config.data.holdout} held out (`data.holdout`) with flips '
      'and 90/180/270 rotations, LR by MATLAB bicubic on the device, '
      f'Adam({config.optimizer.b1}, {config.optimizer.b2}), lr '
      f'{config.optimizer.lr_values[0]:g} then '
      f'{config.optimizer.lr_values[1]:g} from step '
      f'{config.optimizer.lr_boundaries[0]}. Seeds {", ".join(map(str, seeds))}'
      ' (initialisation and data order).',
      '- Non-finite steps: the on-device guard drops a step whose loss or '
      f'gradients are not finite; with `nan_policy={config.nan_policy!r}` '
      'training goes on. Steps dropped: '
      + (f'{skipped_runs}; every other run none.' if skipped_runs else
         'none in any run.'),
      '- Variants (`configs/cpu_scale.py`): ' + '; '.join(
          f'{NAMES[l]}: `{variants[l][0]}`'
          + (f' {variants[l][1]}' if variants[l][1] else '')
          + (f' with {variants[l][2]}' if variants[l][2] else '')
          for l in losses) + '. MSE (eq. 1), MLE = Gaussian NLL (eq. 3), '
      'GRAM (eq. 4), loss-rescaling (eq. 5), beta-NLL (Seitzer et al. 2022), '
      'faithful (Stirn et al. 2023: MSE for the mean, the NLL for the '
      'variance head, which reads a stop-gradient copy of the features).',
      f'- Evaluation: {", ".join(names)}; x{m.scale} PSNR (dB)/SSIM on the '
      'Y channel, the `standard` convention of docs/evaluation.md (MATLAB '
      'bicubic LR rounded to uint8, shave 4 px, 11x11 Gaussian SSIM), latest '
      'checkpoint. Uncertainty figures pooled over every pixel of a set, '
      'in grey levels; RGB (every channel, what the likelihood is trained '
      'on) is primary, Y assumes fully correlated channel errors.',
      '- Recalibration: sigma scaling and isotonic recalibration, each fitted '
      f'per model on the {config.data.holdout} SunHays80 images its training '
      'held out (`evaluate --calibrate_on=heldout`; docs/evaluation.md, '
      '"Recalibration").',
      f'- Hardware: {hardware()}.',
      f'- Wall time: training {fmt_s(sum(walls.values()))} for {len(jobs)} '
      f'models (about {fmt_s(statistics.fmean(walls.values()))} each), '
      f'evaluation {fmt_s(eval_s)} in the run that wrote this page '
      '(evaluations of unchanged checkpoints are kept in each run\'s '
      '`study_eval.json`), whole script '
      f'{fmt_s(time.time() - started)}.',
      '',
      '## Table I format',
      '',
      f'PSNR (dB) / SSIM, mean ±standard deviation over {len(seeds)} seeds '
      '(over the runs that did not collapse, where the row says so); '
      '"vs MSE": the mean over seeds of the difference from the MSE model '
      'trained with the same seed.',
      '',
      table_one(results, losses, seeds, names),
      '',
      'PSNR per seed:',
      '',
      per_seed_table(results, losses, seeds, names),
      '',
      '## Uncertainty before and after recalibration (RGB)',
      '',
      'Gaussian NLL (nats per value, grey levels), AUSE (Ilg et al. 2018; '
      'lower is better), Spearman correlation of sigma and |error|, AUCE '
      '(Gustafsson et al. 2020) and MACE (uncertainty-toolbox) (0 is '
      'calibrated), coverage of the central 90 % interval, mean sigma over '
      'RMSE; then (s): after sigma scaling, (iso): after isotonic '
      'recalibration (its NLL is undefined). AUSE and Spearman do not change '
      'under either. Mean ±sd over the seeds whose run did not collapse; MSE '
      'has no trained variance head.',
      '',
      *[line for f in names for line in (
          f'**{f}**', '', quality_table(results, losses, seeds, f, 'rgb'),
          '')],
      'The sigma-scaling factor fitted on the held-out images against the '
      'factor that would have calibrated each test set on its own (RGB; 1 '
      'is calibrated):',
      '',
      scale_table(results, losses, seeds, names),
      '',
      '## The Y channel',
      '',
      'The correlation of the R, G and B errors measured on each set '
      '(`error_channel_correlation`), the RGB coverage of the 90 % interval '
      'and the Y channel\'s with its variance for fully correlated channel '
      'errors (the default, docs/evaluation.md), before and after sigma '
      'scaling (fitted on Y):',
      '',
      y_table(results, losses, seeds, names),
      '',
      *[line for f in names for line in (
          f'**{f}, Y channel**', '',
          quality_table(results, losses, seeds, f, 'y'), '')],
      f'## Pictures (seed {seeds[0]})',
      '',
      '\n\n'.join(pictures),
      '',
  ]
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text('\n'.join(doc))
  raw = {'commit': commit, 'dirty': dirty, 'config': args.config,
         'total_steps': config.total_steps, 'seeds': seeds,
         'train_seconds': {f'{l}_seed{s}': w for (l, s), w in walls.items()},
         'skipped_steps': {f'{l}_seed{s}': n for (l, s), (n, _) in
                           skipped.items()},
         'collapsed': [f'{l}_seed{s}' for l, s in jobs
                       if collapsed(results, l, s)],
         'bicubic': results['bicubic'],
         'models': {l: {str(s): {k: v for k, v in results[l][s].items()
                                 if k != 'curves'} for s in seeds}
                    for l in losses}}
  out.with_suffix('.json').write_text(json.dumps(raw, indent=2))
  print(f'wrote {out}, {out.with_suffix(".json")} and {fig_dir}/',
        file=sys.stderr)


if __name__ == '__main__':
  main()
