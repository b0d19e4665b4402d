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


def build_report(models: dict[str, str], folders, *, scale: int | None,
                 convention: str, baseline: str, tile: int = 128,
                 quiet: bool = False):
  """Evaluates bicubic and every model; returns (markdown, columns)."""
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
  for name, predictor in predictors.items():
    entries = evaluate.evaluate_folders(
        folders, scale=scale, convention=convention, predictor=predictor,
        tile=tile, label=f'{name}: ', quiet=quiet)[0]
    for entry in entries.values():
      entry['workdir'] = str(models[name])
    columns[name] = entries
  caption = make_caption(scale=scale, convention=convention,
                         baseline=baseline, models=models,
                         steps={n: p.step for n, p in predictors.items()})
  return markdown_table(columns, baseline=baseline, caption=caption), columns


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
  table, columns = build_report(models, folders, scale=evaluate.scale_flag(),
                                convention=convention, baseline=baseline,
                                tile=tile)
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
                      'to the same name with .json).')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
