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

fits ``--calibration_method`` on DIR (or on ``heldout``: the images that
``config.data.holdout`` kept out of training, as recorded then;
``heldout[10:]``: a slice of them, e.g. those not validated on), which
must share no image's content with ``--data`` (``--allow_in_sample``:
marked instead), stores it in ``W/calibration.json`` bound to these
weights, and reports every folder before and after: each entry gains
``"calibration"`` and, for sigma_scaling and isotonic,
``"uncertainty_calibrated"`` (the shape of ``"uncertainty"``); for crc and
rcps (an interval with a finite-sample guarantee at ``--alpha``,
``--delta``) ``"interval_calibrated"``. Without ``--calibrate_on`` the
stored calibration is used, refused unless fitted on these very weights
(``--norecalibrate``: not used). ``--conformal_splits=N`` checks the
guarantee on each folder by N random calibration/test halvings
(``"conformal"``).
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
    'out of training; heldout[a:b]: a slice of them), store it in the '
    'workdir, report before and after.')
_CALIBRATION_METHOD = flags.DEFINE_enum(
    'calibration_method', 'sigma_scaling',
    ['sigma_scaling', 'isotonic', 'crc', 'rcps'],
    'With --calibrate_on: sigma_scaling (one factor on sigma, fitted by the '
    'NLL), isotonic (the CDF recalibrated, Kuleshov et al. 2018), or an '
    'interval mean +- lambda*sigma with a finite-sample guarantee on the '
    "share of an image's values outside: crc (conformal risk control: "
    'expected share <= --alpha) or rcps (share <= --alpha with probability '
    '1 - --delta).')
_ALPHA = flags.DEFINE_float('alpha', 0.1, 'crc/rcps and --conformal_splits: '
                            "the share of an image's values allowed outside "
                            'the interval.', lower_bound=1e-6,
                            upper_bound=1 - 1e-6)
_DELTA = flags.DEFINE_float('delta', 0.1, 'rcps: the probability allowed '
                            'that the guarantee fails.', lower_bound=1e-6,
                            upper_bound=1 - 1e-6)
_ALLOW_IN_SAMPLE = flags.DEFINE_bool(
    'allow_in_sample', False, 'Evaluate --data folders that share images '
    '(by content) with the calibration images, marking those entries '
    '"in_sample": true (default: refused).')
_SPLITS = flags.DEFINE_integer(
    'conformal_splits', 0, 'Per --data folder: split its images this many '
    'times at random into calibration and test halves, fit crc, rcps and '
    'constant width on each calibration half and report how they do on '
    'the test half ("conformal" in --json).', lower_bound=0)
_SPLIT_SEED = flags.DEFINE_integer('conformal_seed', 0,
                                   'Seed of --conformal_splits.')
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
  for name, flag in (('--calibrate_on', _CALIBRATE_ON),
                     ('--conformal_splits', _SPLITS)):
    if flag.value and not workdir:
      raise UserError(f'{name}={flag.value} needs --workdir (a model that '
                      'predicts uncertainty)')


def _recalibration(predictor, folders, protocol):
  """The calibration the evaluation reports, and the folders that share
  images with it: fitted on --calibrate_on (and stored in the workdir),
  else the workdir's stored one (unless --norecalibrate), refused unless
  fitted on these very weights; the library's errors named by flags."""
  # pylint: disable=g-import-not-at-top
  from gramjax.evaluation import recalibrate
  from gramjax.metrics import recalibration
  # pylint: enable=g-import-not-at-top
  if not predictor.predicts_uncertainty:
    if _CALIBRATE_ON.value:
      raise UserError('--calibrate_on needs a model that predicts '
                      'uncertainty (this one was trained with the plain '
                      'MSE)')
    return None, {}
  if not _CALIBRATE_ON.value:
    recal = cli.stored_calibration(_WORKDIR.value, predictor.model_key(),
                                   FLAGS.recalibrate)
  else:
    fitted_on, images = recalibrate.calibration_images(
        _CALIBRATE_ON.value, _WORKDIR.value, key='--calibrate_on')
    recal = recalibrate.fit_recalibration(
        predictor, images, protocol, method=_CALIBRATION_METHOD.value,
        fitted_on=fitted_on, alpha=_ALPHA.value, delta=_DELTA.value)
  try:
    shared = ({} if recal is None else recalibrate.check_disjoint(
        recal, folders, _ALLOW_IN_SAMPLE.value))
  except UserError as e:
    where = (f'--calibrate_on={_CALIBRATE_ON.value}' if _CALIBRATE_ON.value
             else recalibration.path_in(_WORKDIR.value))
    raise UserError(f'{where}: {e} (--allow_in_sample)') from e
  if _CALIBRATE_ON.value:
    path = recalibration.save(_WORKDIR.value, recal, key='--calibrate_on')
    print(f'calibration: {recal.describe()}; wrote {path}', file=sys.stderr)
  return recal, shared


def _split_studies(results, entries) -> None:
  """--conformal_splits on each folder, into its entry's "conformal"."""
  # pylint: disable=g-import-not-at-top
  from gramjax.evaluation import intervals
  # pylint: enable=g-import-not-at-top
  for name, result in results.items():
    if not result.images[0].samples:
      raise UserError('--conformal_splits needs --workdir with a model that '
                      'predicts uncertainty')
    try:
      entries[name]['conformal'] = intervals.split_study(
          result.images, splits=_SPLITS.value, alpha=_ALPHA.value,
          delta=_DELTA.value, seed=_SPLIT_SEED.value)
    except ValueError as e:
      raise UserError(f'--conformal_splits on {name}: {e}') from e
    print(intervals.describe_study(name, entries[name]['conformal']),
          file=sys.stderr)


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
  shared = {}
  if predictor is not None:
    recal, shared = _recalibration(predictor, folders, protocol)
    if recal is not None and cli.given('y_correlation') is not None:
      raise UserError('--y_correlation: the calibration brings its own, '
                      f'measured on its images ({recal.y_correlation:.3f}); '
                      'leave it out, or pass --norecalibrate')
    protocol = protocol.with_recalibration(recal)
  results = folders_lib.evaluate_folders(folders, protocol, predictor)
  entries = folders_lib.entries(results)
  for name, images in shared.items():
    entries[name].update(in_sample=True, in_sample_images=images)
  if _SPLITS.value:
    _split_studies(results, entries)
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
