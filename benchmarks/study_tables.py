"""The CPU-scale study's tables (benchmarks/reproduce_cpu_scale.py): from
its results, ``{loss: {seed: evaluation}}`` plus ``'bicubic'``, Markdown
tables in Table I's format, per seed, of the uncertainty figures and of the
fitted recalibration; and which runs collapsed (left out of every mean)."""

from __future__ import annotations

import statistics

NAMES = {'mse': 'MSE', 'mle': 'MLE', 'gram': 'GRAM',
         'gram_255': 'GRAM [0,255]', 'loss_rescale': 'Loss-rescale',
         'beta_nll': 'beta-NLL 0.5', 'beta_nll_1': 'beta-NLL 1',
         'faithful': 'Faithful', 'gram_warmup': 'GRAM+warm-up',
         'gram_noise_init': 'GRAM+noise init'}



def mean_sd(values: list[float]) -> tuple[float, float]:
  return (statistics.fmean(values),
          statistics.stdev(values) if len(values) > 1 else 0.0)


def pm(values: list[float], fmt: str = '.2f', signed: bool = False) -> str:
  """'mean ±sd' over seeds ('+' on a positive mean if ``signed``)."""
  m, sd = mean_sd(values)
  return f'{m:{"+" if signed else ""}{fmt}} ±{sd:{fmt}}'


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
