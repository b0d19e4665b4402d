"""PSNR/SSIM (and predicted uncertainty) on benchmark folders at full size.

  python -m gramjax.evaluate --method=bicubic \\
      --data=../shared/data/Set5,../shared/data/Set14 --scale=4
  python -m gramjax.evaluate --workdir=runs/gram [--step=N] \\
      --data=data/Set5,data/Set14 --json=runs/gram/eval.json

The protocol is the literature's (``gramjax.evaluation.protocol``, ``gramjax.metrics.quality``):
MATLAB-bicubic LR rounded to uint8, PSNR/SSIM on the Y channel (greyscale
files on their grey values) under ``--convention``; folder figures are means
over images.

``--json`` writes ``{"<folder>": {"psnr", "ssim", "images", "convention"}}``
(folder = basename, ``parent/basename`` where two clash). For a
``--workdir`` each entry also has ``"step"`` and, for models that predict
uncertainty, ``sigma_rgb_mean_grey``, ``sigma_rgb_median_grey``,
``rmse_grey``, ``nll_grey`` (grey levels, [0, 255] units),
``error_channel_correlation`` and ``"uncertainty": {"y": {...}, "rgb":
{...}, "units": ..., "y_correlation": ...}`` (Y's variance assumes channel
errors of that correlation, ``--y_correlation``;
``gramjax.metrics.summary.summarize``: NLL, AUSE,
AURG, AUCE, coverage_50/80/90/95, Spearman, RMSE, mean sigma). A model
trained with the plain MSE has none of these. ``--figures=DIR`` draws each
folder's reliability diagram and sparsification plot.

Recalibration (docs/evaluation.md, "Recalibration")::

  python -m gramjax.evaluate --workdir=W --calibrate_on=DIR --data=...

fits ``--calibration_method`` (sigma_scaling or isotonic) on DIR (or on
``heldout``: the images ``config.data.holdout`` kept out of training), which
must share no image with ``--data``, stores it in ``W/calibration.json``
and reports every folder before and after: each entry gains
``"calibration"`` (method, fitted_on, values) and
``"uncertainty_calibrated"`` (the shape of ``"uncertainty"``). Without
``--calibrate_on`` a stored recalibration of the same checkpoint is used
(``--norecalibrate``: not).
"""

import pathlib
import sys

from absl import flags

from gramjax import cli
from gramjax.core.errors import UserError

METHODS = ('bicubic',)

cli.define_eval_flags()
flags.adopt_module_key_flags(cli)
_METHOD = flags.DEFINE_string('method', None, 'Baseline to evaluate: bicubic.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to evaluate.')
_STEP = cli.define_step_flag()
_JSON = flags.DEFINE_string('json', None, 'Write the folder results here.')
_PER_IMAGE = flags.DEFINE_bool('per_image', False,
                               'Also print one row per image.')
_CALIBRATE_ON = flags.DEFINE_string(
    'calibrate_on', None, 'Fit a recalibration of the uncertainty on this '
    'folder of HR images (or heldout: the images config.data.holdout kept '
    'out of training), store it in the workdir, report before and after.')
_CALIBRATION_METHOD = flags.DEFINE_enum(
    'calibration_method', 'sigma_scaling', ['sigma_scaling', 'isotonic'],
    'With --calibrate_on: sigma_scaling (one factor on sigma, fitted by the '
    'NLL) or isotonic (the CDF recalibrated, Kuleshov et al. 2018).')
_FIGURES = flags.DEFINE_string(
    'figures', None, 'Write a reliability diagram and a sparsification plot '
    "per folder here (needs matplotlib: pip install -e '.[plots]').")
FLAGS = flags.FLAGS


def check_flags() -> None:
  """Flag combinations and values, each error naming the flag."""
  method, workdir = _METHOD.value, _WORKDIR.value
  if method and workdir:
    raise UserError(f'--method={method} and --workdir={workdir}: give '
                    'one of them, not both')
  if not method and not workdir:
    raise UserError('give --method=bicubic or --workdir=DIR (a trained '
                    'model)')
  if method and method not in METHODS:
    raise UserError(f'--method={method}: use one of {", ".join(METHODS)} '
                    '(or --workdir=DIR for a trained model)')
  if _STEP.value is not None and not workdir:
    raise UserError(f'--step={_STEP.value} needs --workdir')
  if _CALIBRATE_ON.value and not workdir:
    raise UserError(f'--calibrate_on={_CALIBRATE_ON.value} needs --workdir '
                    '(a model that predicts uncertainty)')


def _recalibration(predictor, folders, protocol):
  """The recalibration the evaluation reports: fitted on --calibrate_on
  (and stored in the workdir), else the workdir's stored one of this step
  (unless --norecalibrate); the library's errors named by these flags."""
  # pylint: disable=g-import-not-at-top
  from gramjax.evaluation import recalibrate
  from gramjax.metrics import recalibration
  # pylint: enable=g-import-not-at-top
  if not _CALIBRATE_ON.value:
    if not predictor.predicts_uncertainty:
      return None
    return recalibration.for_step(_WORKDIR.value, predictor.step,
                                  FLAGS.recalibrate)
  if not predictor.predicts_uncertainty:
    raise UserError('--calibrate_on needs a model that predicts uncertainty '
                    '(this one was trained with the plain MSE)')
  fitted_on, images = recalibrate.calibration_images(
      _CALIBRATE_ON.value, predictor, key='--calibrate_on')
  try:
    recalibrate.check_disjoint(fitted_on, images, folders)
  except UserError as e:
    raise UserError(f'--calibrate_on={fitted_on}: {e}') from e
  recal = recalibrate.fit_recalibration(
      predictor, images, protocol, method=_CALIBRATION_METHOD.value,
      fitted_on=fitted_on)
  path = recalibration.save(_WORKDIR.value, recal, key='--calibrate_on')
  print(f'recalibration: {recal.describe()}; wrote {path}', file=sys.stderr)
  return recal


def _main() -> None:
  check_flags()
  # The library is imported once the flags are good: --help and usage
  # errors answer at once, without loading JAX.
  # pylint: disable=g-import-not-at-top
  from gramjax.evaluation import folders as folders_lib
  from gramjax.evaluation.protocol import Protocol
  from gramjax.reporting import figures
  from gramjax.core import files
  from gramjax.inference import predictor as inference
  from gramjax.metrics import quality as metrics
  from gramjax.reporting import table1 as reporting
  from gramjax.reporting import tables
  # pylint: enable=g-import-not-at-top
  folders = folders_lib.resolve_folders(FLAGS.data, key='--data')
  scale, predictor = cli.given('scale'), None
  if _WORKDIR.value:
    try:
      predictor = inference.load(_WORKDIR.value, _STEP.value)
    except inference.ModelError as e:    # The library names no flags.
      raise UserError(f'--{e.what}={e.value}: {e.why}') from e
    scale = reporting.check_scale(predictor.scale, scale,
                                  f'--workdir={_WORKDIR.value}', '--scale')
    title = (f'{_WORKDIR.value} (step {predictor.step}, {predictor.weights} '
             f'weights), x{scale}')
    if _FIGURES.value and not predictor.predicts_uncertainty:
      raise UserError('--figures needs --workdir with a model that predicts '
                      'uncertainty')
  else:
    scale = FLAGS.scale if scale is None else scale
    if scale < 2:
      raise UserError(f'--scale={scale}: must be >= 2')
    title = f'bicubic, x{scale}'
    if _FIGURES.value:
      raise UserError('--figures needs --workdir with a model that predicts '
                      'uncertainty')
  # The flags not given leave the library's defaults.
  protocol = Protocol(scale, FLAGS.convention, FLAGS.tile,
                      **cli.given_kwargs('y_correlation', 'aggregation'))
  if predictor is not None:
    protocol = protocol.with_recalibration(
        _recalibration(predictor, folders, protocol))
  results = folders_lib.evaluate_folders(folders, protocol, predictor)
  entries = folders_lib.entries(results)
  caption = metrics.get_convention(FLAGS.convention).describe(scale)
  print(tables.format_table(
      entries, title=title, caption=caption,
      per_image={n: r.images for n, r in results.items()}
      if _PER_IMAGE.value else None))
  if _JSON.value:
    files.write_json(_JSON.value, entries, '--json')
  if _FIGURES.value:
    label = pathlib.Path(_WORKDIR.value).name or _WORKDIR.value
    for folder, result in results.items():
      for _, path in figures.folder_plots({label: result}, folder,
                                          _FIGURES.value):
        print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
  cli.start(_main)
