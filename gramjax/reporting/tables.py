"""Tables of evaluation results: the plain-text table ``gramjax.evaluate``
prints, and the markdown Table I (plus uncertainty-quality tables) of
``gramjax.report``. Entries are ``gramjax.evaluation.folders`` entries
(``folders.entries(...)[name]``).
"""

from __future__ import annotations

from gramjax.metrics import quality as metrics

BICUBIC = 'Bicubic'

# (header, key of the uncertainty summary, format): one list for every table.
QUALITY_COLUMNS = (
    ('NLL', 'nll', '.3f'), ('AUSE', 'ause', '.4f'), ('AURG', 'aurg', '.4f'),
    ('AUCE', 'auce', '.4f'), ('MACE', 'mace', '.4f'),
    ('cov50', 'coverage_50', '.3f'),
    ('cov80', 'coverage_80', '.3f'), ('cov90', 'coverage_90', '.3f'),
    ('cov95', 'coverage_95', '.3f'), ('Spearman', 'spearman', '.3f'),
    ('sigma', 'mean_sigma', '.2f'), ('RMSE', 'rmse', '.2f'))
# The sigma column's header names its channel space.
SIGMA_HEADERS = {'y': 'sigma_Y', 'rgb': 'sigma_RGB'}

QUALITY_CAPTION = (
    'Gaussian NLL (nats/pixel, grey levels), AUSE/AURG of the RMSE '
    'sparsification curve (Ilg et al. 2018; AURG: Poggi et al. 2020; '
    'lower/higher is better), AUCE (Gustafsson et al. 2020) and MACE '
    '(uncertainty-toolbox; 0 is perfectly calibrated), coverage of the central 50/80/90/95 % intervals, Spearman '
    'rank correlation of sigma and |error|, mean sigma and RMSE in grey '
    'levels')

CHANNELS = (('y', 'Y channel'), ('rgb', 'RGB'))


def _headers(channel: str) -> list[str]:
  return [SIGMA_HEADERS[channel] if key == 'mean_sigma' else label
          for label, key, _ in QUALITY_COLUMNS]


def how_aggregated(quality: dict[str, dict]) -> str:
  """'pooled over all pixels' / 'means over images' (from entries'
  ``uncertainty`` dicts), with the images a NaN metric left out."""
  kinds = {q.get('aggregation', 'per_image') for q in quality.values()}
  text = ' / '.join('pooled over all pixels of each folder' if k == 'pooled'
                    else 'means over images' for k in sorted(kinds))
  undefined = [f'{name} on {n} image(s) of {folder}'
               for folder, q in quality.items()
               for name, n in q.get('undefined', {}).items()]
  if undefined:
    text += '; undefined, left out of the means: ' + ', '.join(undefined)
  return text


def y_assumption(quality: dict[str, dict]) -> str:
  """How the Y channel's variance was combined, from entries'
  ``uncertainty`` dicts: 'variance for R, G, B errors of correlation 1'."""
  rhos = sorted({q.get('y_correlation') for q in quality.values()},
                key=str)
  text = ', '.join('?' if r is None else f'{r:g}' for r in rhos)
  return f'variance for R, G, B errors of correlation {text}'


# ------------------------------------------------------------ plain text --

def _sigma_cell(entry: dict) -> str:
  sigma = entry.get('sigma_rgb_mean_grey')
  return f'{"-":>16}' if sigma is None else f'{sigma:>16.2f}'


def format_table(entries: dict[str, dict], *, title: str, caption: str,
                 per_image: dict[str, list] | None = None) -> str:
  """A plain-text table: one row per folder (and per image, from
  ``evaluation.ImageResult``s, if given), then the Y-channel quality."""
  has_sigma = any('sigma_rgb_mean_grey' in e for e in entries.values())
  names = list(entries) + [
      '  ' + r.name for rs in (per_image or {}).values() for r in rs]
  width = max([len('folder')] + [len(n) for n in names]) + 2
  head = f'{"folder":<{width}}{"PSNR (dB)":>10}{"SSIM":>9}{"images":>8}'
  if has_sigma:
    head += f'{"sigma RGB grey":>16}'
  lines = [title, caption, head, '-' * len(head)]
  for name, e in entries.items():
    row = f'{name:<{width}}{e["psnr"]:>10.2f}{e["ssim"]:>9.4f}{e["images"]:>8d}'
    if has_sigma:
      row += _sigma_cell(e)
    lines.append(row)
    for r in (per_image or {}).get(name, []):
      row = f'{"  " + r.name:<{width}}{r.psnr:>10.2f}{r.ssim:>9.4f}{"":>8}'
      if has_sigma:
        row += _sigma_cell(r.uncertainty)
      lines.append(row + ('  (grey)' if r.grey else ''))
  quality = {n: e['uncertainty'] for n, e in entries.items()
             if 'uncertainty' in e}
  rows = {}
  for name, e in entries.items():
    if 'uncertainty' in e:
      rows[name] = e['uncertainty']
    if 'uncertainty_calibrated' in e:
      rows[f'{name} {recalibrated_label(e)}'] = e['uncertainty_calibrated']
  width = max([width] + [len(n) + 2 for n in rows])
  for channel, title in [(c, t) for c, t in CHANNELS
                         if quality and all(c in q for q in quality.values())]:
    header = f'{"folder":<{width}}' + ''.join(
        f'{label:>10}' for label in _headers(channel))
    assumption = f' ({y_assumption(quality)})' if channel == 'y' else ''
    lines += ['', f'uncertainty quality, {title}{assumption}: '
              f'{QUALITY_CAPTION}; {how_aggregated(quality)}'
              f'{calibration_note(entries)}:', header, '-' * len(header)]
    for name, q in rows.items():
      lines.append(f'{name:<{width}}' + ''.join(
          f'{q[channel][key]:>10{fmt}}' for _, key, fmt in QUALITY_COLUMNS))
  return '\n'.join(lines + interval_lines(entries))


INTERVAL_COLUMNS = (('lambda', 'lambda', '.3f'), ('risk', 'risk', '.4f'),
                    ('coverage', 'coverage', '.4f'),
                    ('half-width', 'mean_halfwidth_grey', '.2f'))


def interval_rows(entries: dict[str, dict]) -> list[tuple[str, list[str]]]:
  """(label, cells) per folder and channel with an interval calibration:
  its figures, then the constant width's half-width and risk."""
  rows = []
  for name, e in entries.items():
    got = e.get('interval_calibrated')
    for channel in (c for c, _ in CHANNELS if got and c in got):
      c = got[channel]
      const = c['constant_width']
      rows.append((f'{name} {channel.upper()}', [
          f'{c[k]:{fmt}}' for _, k, fmt in INTERVAL_COLUMNS] + [
              f'{const["mean_halfwidth_grey"]:.2f}', f'{const["risk"]:.4f}']))
  return rows


def interval_caption(entries: dict[str, dict]) -> str:
  e = next(e for e in entries.values() if 'interval_calibrated' in e)
  got, cal = e['interval_calibrated'], e['calibration']
  level = f'delta {got["delta"]} ' if got['delta'] is not None else ''
  return (f'interval mean +- lambda x sigma, {got["method"]} at alpha '
          f'{got["alpha"]} {level}fitted on {got["calibration_images"]} '
          f'images of {cal["fitted_on"]}: risk = mean over images of the '
          "share of an image's values outside (what the guarantee bounds), "
          'half-width in grey levels; constant: the same method with one '
          'width for every pixel')


def interval_lines(entries: dict[str, dict]) -> list[str]:
  """The plain-text interval table (none without an interval fit)."""
  rows = interval_rows(entries)
  if not rows:
    return []
  heads = [h for h, _, _ in INTERVAL_COLUMNS] + ['const. hw', 'const. risk']
  width = max(len('folder') + 2, *(len(n) + 2 for n, _ in rows))
  header = f'{"folder":<{width}}' + ''.join(f'{h:>12}' for h in heads)
  return ['', interval_caption(entries) + ':', header, '-' * len(header),
          *(f'{n:<{width}}' + ''.join(f'{c:>12}' for c in cells)
            for n, cells in rows)]


def recalibrated_label(entry: dict) -> str:
  """'(sigma scaling)' / '(isotonic)': the row label of recalibrated
  figures."""
  return f'({entry["calibration"]["method"].replace("_", " ")})'


def calibration_note(entries: dict[str, dict]) -> str:
  """'; recalibrated rows: ... fitted on ...' when entries have one."""
  fits = {(e['calibration']['method'], e['calibration']['fitted_on'],
           e['calibration']['step'])
          for e in entries.values()
          if 'calibration' in e and 'interval' not in e['calibration']}
  if not fits:
    return ''
  return '; recalibrated rows: ' + ', '.join(
      f'{m.replace("_", " ")} fitted on {on} at step {step} (pooled; NLL '
      'undefined for isotonic)' if m == 'isotonic' else
      f'{m.replace("_", " ")} fitted on {on} at step {step} (pooled)'
      for m, on, step in sorted(fits))


# -------------------------------------------------------------- markdown --

def _cell(entry: dict, base: dict | None) -> str:
  psnr, ssim = round(entry['psnr'], 2), round(entry['ssim'], 4)
  cell = f'{psnr:.2f}/{ssim:.4f}'
  if base is not None:
    # "+ 0.0" turns a rounded -0.0 into 0.0 (printed "+0.00").
    dp = round(psnr - round(base['psnr'], 2), 2) + 0.0
    ds = round(ssim - round(base['ssim'], 4), 4) + 0.0
    cell += f' ({dp:+.2f}/{ds:+.4f})'
  return cell


def markdown_table(columns: dict[str, dict[str, dict]], *, baseline: str,
                   caption: str) -> str:
  """Table I: ``columns`` is {column name: {folder: entry}}, Bicubic first;
  cells "PSNR/SSIM" and, for models other than ``baseline``, the difference
  from it between the displayed (rounded) numbers."""
  names = list(columns)
  folders = list(columns[names[0]])
  lines = [caption, '',
           '| Dataset | ' + ' | '.join(names) + ' |',
           '| --- |' + ' --- |' * len(names)]
  for folder in folders:
    cells = []
    for name in names:
      base = (columns[baseline][folder]
              if name not in (baseline, BICUBIC) else None)
      cells.append(_cell(columns[name][folder], base))
    lines.append(f'| {folder} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def make_caption(*, scale: int, convention: str, baseline: str,
                 models: dict[str, str], steps: dict[str, int]) -> str:
  conv = metrics.get_convention(convention)
  ckpts = ', '.join(f'{n} = {w} step {steps[n]}' for n, w in models.items())
  return (f'PSNR (dB)/SSIM, x{scale}, mean over each dataset; in '
          f'parentheses the difference from {baseline}. Measured with '
          f'{conv.describe(scale)}. Checkpoints: {ckpts}.')


def quality_tables(columns: dict[str, dict[str, dict]]) -> str:
  """Markdown tables of the uncertainty-quality figures (Y, then RGB): one
  row per dataset and model that predicts uncertainty."""
  out = []
  for channel, title in CHANNELS:
    rows = []
    for name, entries in columns.items():
      for folder, e in entries.items():
        for label, key in ((name, 'uncertainty'),
                           (f'{name} {recalibrated_label(e)}'
                            if 'calibration' in e else '',
                            'uncertainty_calibrated')):
          q = e.get(key, {}).get(channel)
          if q:
            rows.append(f'| {folder} | {label} | ' + ' | '.join(
                f'{q[k]:{fmt}}' for _, k, fmt in QUALITY_COLUMNS) + ' |')
    if rows:
      quality = {f'{n}/{f}': e['uncertainty'] for n, es in columns.items()
                 for f, e in es.items() if 'uncertainty' in e}
      assumption = f' ({y_assumption(quality)})' if channel == 'y' else ''
      notes = ''.join(calibration_note(es) for es in columns.values())
      out += [f'Uncertainty quality, {title}{assumption}: '
              f'{QUALITY_CAPTION}; {how_aggregated(quality)}{notes}.', '',
              '| Dataset | Model | ' + ' | '.join(_headers(channel)) + ' |',
              '| --- | --- |' + ' ---: |' * len(QUALITY_COLUMNS), *rows, '']
  return '\n'.join(out)
