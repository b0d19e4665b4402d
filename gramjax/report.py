"""The paper's Table I for your own runs: bicubic plus trained models.

  python -m gramjax.report --models=mse=runs/mse,mle=runs/mle,gram=runs/gram \\
      --data=data/Set5,data/Set14,data/B100 --baseline=mse --out=table.md

Evaluates bicubic and every model (latest checkpoint) on every folder with
the protocol of ``gramjax.evaluate`` and writes a markdown table in the
paper's format: rows = datasets, columns = Bicubic then the models, cells
"PSNR/SSIM" and, for models other than ``--baseline``, the difference from
the baseline "(-0.05/-0.0005)" between the displayed numbers. A caption
names the convention and each model's checkpoint step. Below come the
uncertainty-quality tables (Y and RGB) and links to pictures in
``<out stem>_figures/`` (reliability diagrams and sparsification plots with
every model, needing matplotlib, and a Fig. 3-style comparison of HR,
bicubic and each model's mean and sigma on the hardest crop of the first
``--fig_images`` images). The raw numbers go to ``<out>.json``:
``{"Bicubic": {folder: entry}, "<model>": {folder: entry}}`` with the
entries of ``gramjax.evaluate --json`` (models' entries add "workdir").
"""

import os
import pathlib
import sys

from absl import flags

from gramjax import cli
from gramjax.reporting import tables
from gramjax.core.errors import UserError

cli.define_eval_flags()
flags.adopt_module_key_flags(cli)
_MODELS = flags.DEFINE_string('models', None, 'NAME=WORKDIR[,NAME=WORKDIR...],'
                              ' one table column each, in this order.')
_BASELINE = flags.DEFINE_string('baseline', None, 'The model the differences '
                                'are taken from (default: the first model).')
_OUT = flags.DEFINE_string('out', None, 'Markdown file to write (the numbers '
                           'go to the same name with .json, the pictures to '
                           'NAME_figures/).')
_FIG_IMAGES = flags.DEFINE_integer('fig_images', 2, 'Images per dataset in '
                                   'the HR/bicubic/mean/sigma comparison.')
_NO_FIGURES = flags.DEFINE_bool('no_figures', False, 'Skip the pictures.')
FLAGS = flags.FLAGS


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
    if name in models or name == tables.BICUBIC:
      raise UserError(f'--models: the name {name!r} is used twice'
                      if name in models else
                      f'--models: {tables.BICUBIC!r} is the bicubic column')
    models[name] = workdir
  if not models:
    raise UserError('--models is required: NAME=WORKDIR[,NAME=WORKDIR...]')
  return models


def _main() -> None:
  # The library is imported once the flags are parsed: --help and usage
  # errors answer at once, without loading JAX.
  # pylint: disable=g-import-not-at-top
  from gramjax.evaluation import folders as folders_lib
  from gramjax.core import files
  from gramjax.metrics import recalibration
  from gramjax.reporting import table1 as reporting
  # pylint: enable=g-import-not-at-top
  models = parse_models(_MODELS.value)
  baseline = _BASELINE.value or next(iter(models))
  if baseline not in models:
    raise UserError(f'--baseline={baseline}: not one of --models '
                    f'({", ".join(models)})')
  if not _OUT.value:
    raise UserError('--out is required: the markdown file to write')
  out = pathlib.Path(os.path.expanduser(_OUT.value))
  if out.suffix.lower() == '.json':
    raise UserError(f'--out={out}: give the markdown file (e.g. table.md); '
                    'the JSON is written beside it')
  folders = folders_lib.resolve_folders(FLAGS.data, key='--data')
  figures_dir = None if _NO_FIGURES.value else (
      out.parent / f'{out.stem}_figures')
  try:
    table, columns = reporting.build_report(
        models, folders, scale=cli.given('scale'),
        convention=FLAGS.convention, baseline=baseline, tile=FLAGS.tile,
        figures_dir=figures_dir, fig_images=_FIG_IMAGES.value,
        link_base=out.parent, recalibrate=FLAGS.recalibrate,
        scale_key='--scale',
        **cli.given_kwargs('y_correlation', 'aggregation'))
  except recalibration.StaleCalibration as e:
    raise cli.stale_calibration(e) from e
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    files.write_text_atomic(out, table)
  except OSError as e:
    raise UserError(f'--out={out}: cannot write it ({e})') from e
  files.write_json(out.with_suffix('.json'), columns, '--out')
  print(table, end='')
  print(f'wrote {out} and {out.with_suffix(".json")}', file=sys.stderr)


if __name__ == '__main__':
  cli.start(_main)
