"""The paper's Table I for your own runs: bicubic plus trained models.

  python -m gramjax.report --models=mse=runs/mse,mle=runs/mle,gram=runs/gram \\
      --data=data/Set5,data/Set14,data/B100 --baseline=mse --out=table.md

Evaluates bicubic and every model (latest checkpoint) on every folder with
``gramjax.evaluate`` and writes a markdown table in the paper's format:
rows = datasets, columns = Bicubic then the models, cells "PSNR/SSIM" and,
for models other than ``--baseline``, the difference from the baseline
"(-0.05/-0.0005)". Differences are taken between the displayed (rounded)
numbers, so every cell's difference is the one a reader computes. A caption
line above the table names the convention (channel, shave, SSIM window)
and each model's checkpoint step. The table is printed and written to
``--out``; the raw numbers go to the same path with the suffix ``.json``:
``{"Bicubic": {folder: entry}, "<model>": {folder: entry}, ...}`` with the
entries of ``gramjax.evaluate --json`` (models' entries add "workdir").

Below Table I come the uncertainty-quality tables (Y and RGB; see
``gramjax.evaluate``) and links to the pictures written to
``<out stem>_figures/``: per dataset a reliability diagram and a
sparsification plot with every model (these need matplotlib; without it the
report says so), and a Fig. 3-style comparison of HR, bicubic and each
model's mean and sigma on the hardest crop of the first ``--fig_images``
images.
"""

from __future__ import annotations

import os
import pathlib
import sys

from gramjax import evaluate
from gramjax import metrics
from gramjax.errors import UserError

BICUBIC = 'Bicubic'


def parse_models(spec: str) -> dict[str, str]:
  """``name=workdir[,name=workdir...]`` -> ordered {name: workdir}."""
  models = {}
  for part in (spec or '').split(','):
    part = part.strip()
    if not part:
      continue
    name, sep, workdir = part.partition('=')
    name, workdir = name.strip(), workdir.strip()
    if not sep or not name or not workdir:
      raise UserError(f'--models: {part!r} is not NAME=WORKDIR (e.g. '
                      '--models=mse=runs/mse,gram=runs/gram)')
    if name in models or name == BICUBIC:
      raise UserError(f'--models: the name {name!r} is used twice'
                      if name in models else
                      f'--models: {BICUBIC!r} is the bicubic column')
    models[name] = workdir
  if not models:
    raise UserError('--models is required: NAME=WORKDIR[,NAME=WORKDIR...]')
  return models


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
  """``columns``: {column name: {folder: entry}}, Bicubic first."""
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
  keys = [('NLL', 'nll', '.3f'), ('AUSE', 'ause', '.4f'),
          ('AURG', 'aurg', '.4f'), ('AUCE', 'auce', '.4f'),
          ('cov 50', 'coverage_50', '.3f'), ('cov 80', 'coverage_80', '.3f'),
          ('cov 90', 'coverage_90', '.3f'), ('cov 95', 'coverage_95', '.3f'),
          ('Spearman', 'spearman', '.3f'), ('sigma', 'mean_sigma', '.2f'),
          ('RMSE', 'rmse', '.2f')]
  out = []
  for channel, title in (('y', 'Y channel'), ('rgb', 'RGB')):
    rows = []
    for name, entries in columns.items():
      for folder, e in entries.items():
        q = e.get('uncertainty', {}).get(channel)
        if q:
          rows.append(f'| {folder} | {name} | ' + ' | '.join(
              f'{q[k]:{fmt}}' for _, k, fmt in keys) + ' |')
    if not rows:
      continue
    out += [f'Uncertainty quality, {title}: Gaussian NLL (nats/pixel, grey '
            'levels), AUSE/AURG of the RMSE sparsification curve (Ilg et al.'
            ' 2018; lower/higher is better), AUCE (Gustafsson et al. 2020; '
            '0 is perfectly calibrated), coverage of the central 50/80/90/95 '
            '% intervals, Spearman rank correlation of sigma and |error|, '
            'mean sigma and RMSE in grey levels; means over images.', '',
            '| Dataset | Model | ' + ' | '.join(k[0] for k in keys) + ' |',
            '| --- | --- |' + ' ---: |' * len(keys), *rows, '']
  return '\n'.join(out)


def write_figures(predictors, per_image, folders, *, scale: int,
                  tile: int, directory: pathlib.Path, fig_images: int
                  ) -> tuple[list[tuple[str, pathlib.Path]], str]:
  """Per dataset: a reliability diagram and a sparsification plot with every
  model that predicts uncertainty, and a Fig. 3-style comparison of the
  first ``fig_images`` images. Returns ([(title, path)], note)."""
  from gramjax import data as data_lib  # pylint: disable=g-import-not-at-top
  from gramjax import figures  # pylint: disable=g-import-not-at-top
  from gramjax import visualize  # pylint: disable=g-import-not-at-top
  written, note = [], ''
  for folder in folders:
    stem = folder.name.replace('/', '_')
    curves = {name: evaluate.mean_curves(per_image[name][folder.name])
              for name in predictors}
    curves = {n: c for n, c in curves.items() if c is not None}
    if curves:
      try:
        written.append((f'Reliability diagram, {folder.name} (Y)',
                        figures.reliability_diagram(
                            {n: (c['calibration']['expected'],
                                 c['calibration']['observed'])
                             for n, c in curves.items()},
                            directory / f'reliability_{stem}.png',
                            title=f'{folder.name}, Y')))
        written.append((f'Sparsification, {folder.name} (Y)',
                        figures.sparsification_plot(
                            {n: c['sparsification'] for n, c in
                             curves.items()},
                            directory / f'sparsification_{stem}.png',
                            title=f'{folder.name}, Y')))
      except UserError as e:
        note = f'Plots skipped: {e}.'
    views = []
    for path in folder.images[:fig_images]:
      hr = evaluate.crop_to_scale(data_lib.load_image(path), scale)
      lr = evaluate.make_lr(hr, scale)
      models = []
      for name, predictor in predictors.items():
        mean, log_var = predictor(lr / 255.0, tile=tile)
        models.append(figures.ModelView(
            name, evaluate.mean_to_uint8(mean),
            visualize.sigma_grey_levels(log_var)))
      views.append(figures.ImageView(path.name, hr,
                                     evaluate.upscale_bicubic(lr, scale),
                                     models))
    if views:
      written.append((f'HR, bicubic, and each model\'s mean and sigma, '
                      f'{folder.name}', figures.comparison_figure(
                          views, directory / f'comparison_{stem}.png')))
  return written, note


def build_report(models: dict[str, str], folders, *, scale: int | None,
                 convention: str, baseline: str, tile: int = 128,
                 quiet: bool = False, figures_dir=None, fig_images: int = 2,
                 link_base=None):
  """Evaluates bicubic and every model; returns (markdown, columns). With
  ``figures_dir`` also draws the pictures there and links them (relative
  to ``link_base``, the markdown file's folder)."""
  if baseline not in models:
    raise UserError(f'--baseline={baseline}: not one of --models '
                    f'({", ".join(models)})')
  # Load every model first: a bad workdir fails before any evaluation.
  predictors = {}
  for name, workdir in models.items():
    predictors[name] = evaluate.load_model(workdir)
    scale = evaluate.check_scale(predictors[name].scale, scale,
                                 f'--models={name}={workdir}')
  columns = {BICUBIC: evaluate.evaluate_folders(
      folders, scale=scale, convention=convention, label='Bicubic: ',
      quiet=quiet)[0]}
  per_image = {}
  for name, predictor in predictors.items():
    entries, per_image[name] = evaluate.evaluate_folders(
        folders, scale=scale, convention=convention, predictor=predictor,
        tile=tile, label=f'{name}: ', quiet=quiet)
    for entry in entries.values():
      entry['workdir'] = str(models[name])
    columns[name] = entries
  caption = make_caption(scale=scale, convention=convention,
                         baseline=baseline, models=models,
                         steps={n: p.step for n, p in predictors.items()})
  markdown = markdown_table(columns, baseline=baseline, caption=caption)
  quality = quality_tables(columns)
  if quality:
    markdown += '\n' + quality
  if figures_dir is not None:
    figures_dir = pathlib.Path(figures_dir)
    written, note = write_figures(predictors, per_image, folders,
                                  scale=scale, tile=tile,
                                  directory=figures_dir,
                                  fig_images=fig_images)
    links = []
    for title, path in written:
      rel = os.path.relpath(path, link_base) if link_base else str(path)
      links.append(f'![{title}]({pathlib.Path(rel).as_posix()})')
    markdown += '\n' + '\n\n'.join(links + ([note] if note else [])) + '\n'
  return markdown, columns


def _report_main() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  models = parse_models(f.models)
  baseline = f.baseline or next(iter(models))
  convention = evaluate.check_convention(f.convention)
  tile = evaluate.check_tile(f.tile)
  if not f.out:
    raise UserError('--out is required: the markdown file to write')
  out = pathlib.Path(os.path.expanduser(f.out))
  if out.suffix.lower() == '.json':
    raise UserError(f'--out={out}: give the markdown file (e.g. table.md); '
                    'the JSON is written beside it')
  folders = evaluate.resolve_folders(f.data)
  figures_dir = None
  if not f.no_figures:
    figures_dir = out.parent / f'{out.stem}_figures'
  table, columns = build_report(models, folders, scale=evaluate.scale_flag(),
                                convention=convention, baseline=baseline,
                                tile=tile, figures_dir=figures_dir,
                                fig_images=f.fig_images,
                                link_base=out.parent)
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
  except OSError as e:
    raise UserError(f'--out={out}: cannot write it ({e})') from e
  evaluate.write_json(out.with_suffix('.json'), columns, key='--out')
  print(table, end='')
  print(f'wrote {out} and {out.with_suffix(".json")}', file=sys.stderr)


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  evaluate.run_cli(_report_main)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  evaluate.define_common_flags()
  flags.DEFINE_string('models', None, 'NAME=WORKDIR[,NAME=WORKDIR...], one '
                      'table column each, in this order.')
  flags.DEFINE_string('baseline', None, 'The model the differences are '
                      'taken from (default: the first of --models).')
  flags.DEFINE_string('out', None, 'Markdown file to write (the numbers go '
                      'to the same name with .json, the pictures to '
                      'NAME_figures/).')
  flags.DEFINE_integer('fig_images', 2, 'Images per dataset in the '
                       'HR/bicubic/mean/sigma comparison figure.')
  flags.DEFINE_bool('no_figures', False, 'Skip the pictures.')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
