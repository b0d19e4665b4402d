"""The CPU-scale study's tables (benchmarks/reproduce_cpu_scale.py): from
its results, ``{loss: {seed: evaluation}}`` plus ``'bicubic'``, Markdown
tables of image quality, uncertainty, calibration and conformal intervals.
Runs that collapsed (``study_stats``' rule, training signals only) are
left out of every mean; every comparison is a paired per-seed difference
with its 95 % interval."""

from __future__ import annotations

from benchmarks.study_stats import NAMES, Paired, paired, pm

CALIBRATION = 'calibration_images'     # The in-sample "folder".


def collapsed(results, loss, seed) -> str | None:
  """Why the run collapsed (the training signals' rule, or a sigma that
  is not finite and > 0), or None."""
  run = results[loss][seed]
  if run.get('training', {}).get('collapsed'):
    return run['training']['collapsed']
  if 'uncertainty_error' in run:
    return f'its sigma is unusable ({run["uncertainty_error"]})'
  return None


def alive(results, loss, seeds) -> list:
  """The seeds whose run of ``loss`` did not collapse."""
  return [s for s in seeds if not collapsed(results, loss, s)]


def entry(results, loss, seed, where) -> dict | None:
  """A run's entry for a test folder or CALIBRATION (None if collapsed)."""
  if collapsed(results, loss, seed):
    return None
  run = results[loss][seed]
  return run.get(CALIBRATION) if where == CALIBRATION else run['folders'][where]


def value(results, where, *path):
  """``value(loss, seed)``: the figure at ``path`` of the run's entry
  for ``where`` (None where absent or collapsed), for ``paired``."""
  def get(loss, seed):
    node = entry(results, loss, seed, where)
    for key in path:
      if not isinstance(node, dict) or key not in node:
        return None
      node = node[key]
    return node
  return get


def values(results, loss, seeds, where, *path) -> list[float]:
  get = value(results, where, *path)
  return [v for v in (get(loss, s) for s in seeds) if v is not None]


def likelihood(results, losses, seeds) -> list[str]:
  """The models with a trained variance head and a run that did not
  collapse."""
  return [l for l in losses if any(
      'uncertainty' in results[l][s]['folders'][
          next(iter(results[l][s]['folders']))]
      for s in alive(results, l, seeds))]


def _table(head: list[str], rows: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(head) + ' |',
           '| --- |' + ' ---: |' * (len(head) - 1)]
  lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
  return '\n'.join(lines)


def label(results, loss, seeds) -> str:
  ok = alive(results, loss, seeds)
  return NAMES[loss] + (f' ({len(ok)} of {len(seeds)} seeds)'
                        if len(ok) < len(seeds) else '')


# ------------------------------------------------------------- quality --

def table_one(results, losses, seeds, folders) -> str:
  """Rows = models (Bicubic first); per test folder PSNR/SSIM mean ±sd over
  seeds and the paired difference from MSE with its 95 % interval."""
  head = ['Model'] + [h for f in folders for h in
                      (f'{f} PSNR', f'{f} SSIM', f'{f} vs MSE (dB)')]
  bic = results['bicubic']
  rows = [['Bicubic'] + [c for f in folders for c in (
      f'{bic[f]["psnr"]:.2f}', f'{bic[f]["ssim"]:.4f}', '')]]
  for loss in losses:
    if not alive(results, loss, seeds):
      rows.append([f'{NAMES[loss]} (every seed collapsed)']
                  + [''] * (3 * len(folders)))
      continue
    cells = [label(results, loss, seeds)]
    for f in folders:
      cells.append(pm(values(results, loss, seeds, f, 'psnr')))
      cells.append(pm(values(results, loss, seeds, f, 'ssim'), '.4f'))
      cells.append('' if loss == 'mse' or 'mse' not in losses else
                   paired(value(results, f, 'psnr'), loss, 'mse',
                          seeds).text())
    rows.append(cells)
  return _table(head, rows)


def per_seed_table(results, losses, seeds, folders) -> str:
  """PSNR per run, with the training signals the collapse rule reads."""
  head = ['Model', 'seed', *[f'{f} PSNR' for f in folders],
          'training PSNR, first tenth', 'last tenth', 'steps dropped',
          'collapsed']
  rows = []
  for loss in losses:
    for s in seeds:
      run, t = results[loss][s], results[loss][s].get('training', {})
      rows.append([NAMES[loss], str(s)] + [
          f'{run["folders"][f]["psnr"]:.2f}' for f in folders] + [
              f'{t.get("psnr_first_tenth", float("nan")):.2f}',
              f'{t.get("psnr_last_tenth", float("nan")):.2f}',
              str(t.get('dropped_steps', '?')),
              collapsed(results, loss, s) or 'no'])
  return _table(head, rows)


# --------------------------------------------------------- uncertainty --

QUALITY = [('NLL', 'uncertainty', 'nll', '.2f'),
           ('AUSE', 'uncertainty', 'ause', '.3f'),
           ('Spearman', 'uncertainty', 'spearman', '.3f'),
           ('MACE', 'uncertainty', 'mace', '.3f'),
           ('cov90', 'uncertainty', 'coverage_90', '.3f'),
           ('sigma/RMSE', 'uncertainty', None, '.2f'),
           ('NLL (s)', 'uncertainty_sigma_scaling', 'nll', '.2f'),
           ('MACE (s)', 'uncertainty_sigma_scaling', 'mace', '.3f'),
           ('cov90 (s)', 'uncertainty_sigma_scaling', 'coverage_90', '.3f'),
           ('MACE (iso)', 'uncertainty_isotonic', 'mace', '.3f'),
           ('cov90 (iso)', 'uncertainty_isotonic', 'coverage_90', '.3f')]


def sigma_over_rmse(results, where, channel):
  def get(loss, seed):
    u = value(results, where, 'uncertainty', channel)(loss, seed)
    return None if u is None else u['mean_sigma'] / u['rmse']
  return get


def quality_table(results, losses, seeds, where, channel) -> str:
  """Rows = likelihood models; the figures before, after sigma scaling
  (s) and after isotonic recalibration (iso), mean ±sd over seeds, on a
  test folder or on the calibration images (``CALIBRATION``)."""
  rows = []
  for loss in likelihood(results, losses, seeds):
    cells = [label(results, loss, seeds)]
    for _, block, key, fmt in QUALITY:
      get = (sigma_over_rmse(results, where, channel) if key is None else
             value(results, where, block, channel, key))
      cells.append(pm([v for v in (get(loss, s) for s in seeds)
                       if v is not None], fmt))
    rows.append(cells)
  return _table(['Model'] + [q[0] for q in QUALITY], rows)


COMPARED = [('PSNR (dB)', None, 'psnr', '+.2f'),
            ('AUSE', 'uncertainty', 'ause', '+.3f'),
            ('Spearman', 'uncertainty', 'spearman', '+.3f'),
            ('NLL (s)', 'uncertainty_sigma_scaling', 'nll', '+.3f')]


def compared(results, a, b, seeds, where, block, key) -> Paired:
  path = (key,) if block is None else (block, 'rgb', key)
  return paired(value(results, where, *path), a, b, seeds)


def paired_table(results, losses, seeds, folders, against='gram') -> str:
  """Each likelihood model minus ``against``, paired by seed, on each test
  folder: the mean difference and its 95 % interval (a difference is
  claimed only where it excludes 0). AUSE: lower is better."""
  head = ['Model'] + [f'{f} {c[0]}' for f in folders for c in COMPARED]
  rows = []
  for loss in likelihood(results, losses, seeds):
    if loss == against:
      continue
    rows.append([f'{NAMES[loss]} - {NAMES[against]}'] + [
        compared(results, loss, against, seeds, f, block, key).text(fmt=fmt)
        for f in folders for _, block, key, fmt in COMPARED])
  return _table(head, rows)


def scale_table(results, losses, seeds, folders) -> str:
  """The sigma-scaling factor fitted on the calibration images against the
  one each test set would have needed on its own (RGB)."""
  rows = []
  for loss in likelihood(results, losses, seeds):
    ok = alive(results, loss, seeds)
    fitted = [results[loss][s]['calibration']['sigma_scaling']['values']
              ['rgb']['scale'] for s in ok
              if 'sigma_scaling' in results[loss][s].get('calibration', {})]
    rows.append([label(results, loss, seeds), pm(fitted)] + [
        pm(values(results, loss, seeds, f, 'ideal_scale_rgb'))
        for f in folders])
  return _table(['Model', 'fitted s (calibration images)'] +
                [f'ideal s on {f}' for f in folders], rows)


def y_table(results, losses, seeds, folders) -> str:
  """The channel correlation of the standardised errors measured on the
  calibration images (what Y's variance uses), the one each test set shows
  (never used), and RGB against Y coverage of the 90 % interval after
  sigma scaling."""
  head = ['Model', 'correlation (calibration images)'] + [
      h for f in folders for h in (f'{f} correlation', f'{f} RGB cov90 (s)',
                                   f'{f} Y cov90 (s)')]
  rows = []
  for loss in likelihood(results, losses, seeds):
    cells = [label(results, loss, seeds),
             pm(values(results, loss, seeds, CALIBRATION,
                       'error_channel_correlation'), '.3f')]
    for f in folders:
      cells += [pm(values(results, loss, seeds, f,
                          'error_channel_correlation'), '.3f'),
                pm(values(results, loss, seeds, f,
                          'uncertainty_sigma_scaling', 'rgb', 'coverage_90'),
                   '.3f'),
                pm(values(results, loss, seeds, f,
                          'uncertainty_sigma_scaling', 'y', 'coverage_90'),
                   '.3f')]
    rows.append(cells)
  return _table(head, rows)


# ----------------------------------------------------------- conformal --

def split(results, loss, seeds, method, key) -> list[float]:
  """A split-study figure (``conformal``, RGB) per seed."""
  out = []
  for s in alive(results, loss, seeds):
    m = results[loss][s].get('conformal', {}).get(method, {})
    if key in m:
      out.append(m[key])
  return out


def halfwidth_gain(results, loss, seeds) -> Paired:
  """Per seed: constant width's mean half-width minus crc's, in the split
  study (grey levels; what sigma buys at the same guarantee)."""
  diffs = []
  for s in alive(results, loss, seeds):
    c = results[loss][s].get('conformal', {})
    if 'mean_halfwidth_grey' in c.get('crc', {}) and (
        'mean_halfwidth_grey' in c.get('constant_width', {})):
      diffs.append(c['constant_width']['mean_halfwidth_grey']
                   - c['crc']['mean_halfwidth_grey'])
  return Paired(tuple(diffs))


def conformal_split_table(results, losses, seeds, folders=()) -> str:
  """Per likelihood model, the split study among its calibration images
  (not the test ``folders``): crc, rcps and constant width, mean ±sd over
  seeds of each seed's means over the splits."""
  del folders
  head = ['Model', 'crc risk', 'crc risk <= alpha', 'crc half-width',
          'rcps certified splits', 'rcps risk', 'rcps half-width',
          'constant risk', 'constant half-width',
          'constant - crc half-width']
  rows = []
  for loss in likelihood(results, losses, seeds):
    ok = alive(results, loss, seeds)
    splits = [results[loss][s]['conformal']['splits'] for s in ok
              if 'conformal' in results[loss][s]]
    uncert = split(results, loss, seeds, 'rcps', 'uncertified_splits')
    certified = [n - u for n, u in zip(splits, uncert)]
    rows.append([
        label(results, loss, seeds),
        pm(split(results, loss, seeds, 'crc', 'mean_risk'), '.4f'),
        pm(split(results, loss, seeds, 'crc', 'frac_risk_le_alpha'), '.2f'),
        pm(split(results, loss, seeds, 'crc', 'mean_halfwidth_grey'), '.1f'),
        ', '.join(f'{c}/{n}' for c, n in zip(certified, splits)),
        pm(split(results, loss, seeds, 'rcps', 'mean_risk'), '.4f'),
        pm(split(results, loss, seeds, 'rcps', 'mean_halfwidth_grey'), '.1f'),
        pm(split(results, loss, seeds, 'constant_width', 'mean_risk'), '.4f'),
        pm(split(results, loss, seeds, 'constant_width',
                 'mean_halfwidth_grey'), '.1f'),
        halfwidth_gain(results, loss, seeds).text(fmt='+.1f')])
  return _table(head, rows)


def shift_table(results, losses, seeds, folders, method='crc') -> str:
  """``method`` fitted on all the calibration images and tested on them
  (in sample) and on each test folder (another distribution): the risk
  (mean share of an image's values outside), the share of images whose
  own risk is <= alpha, and the mean half-width, beside constant width's
  risk (RGB)."""
  where = [CALIBRATION, *folders]
  head = ['Model'] + [h for w in where for h in (
      f'{_where(w)} risk', f'{_where(w)} images <= alpha',
      f'{_where(w)} half-width', f'{_where(w)} constant risk')]
  rows = []
  key = f'interval_{method}'
  for loss in likelihood(results, losses, seeds):
    cells = [label(results, loss, seeds)]
    for w in where:
      cells += [
          pm(values(results, loss, seeds, w, key, 'rgb', 'risk'), '.4f'),
          pm(values(results, loss, seeds, w, key, 'rgb',
                    'frac_images_risk_le_alpha'), '.2f'),
          pm(values(results, loss, seeds, w, key, 'rgb',
                    'mean_halfwidth_grey'), '.1f'),
          pm(values(results, loss, seeds, w, key, 'rgb', 'constant_width',
                    'risk'), '.4f')]
    rows.append(cells)
  return _table(head, rows)


def _where(w: str) -> str:
  return 'calibration' if w == CALIBRATION else w
