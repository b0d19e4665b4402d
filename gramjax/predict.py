"""Super-resolve your own images, with a per-pixel uncertainty map.

  python -m gramjax.predict --workdir=runs/gram --input=photo.jpg --output=out
  python -m gramjax.predict --checkpoint=runs/gram/checkpoints/300000 \\
      --input=photos/ --output=out [--tile=128] [--sigma_max=8] \\
      [--nolog_var] [--nocolour_bar] [--redo] [--verbose]

Each input image is the LOW-resolution image: it is upscaled x s (the
model's factor, 4 for the paper's models) as it is, never downscaled first.
For ``<stem>.<ext>`` the command writes into ``--output`` (created if
needed; a run that fails before writing anything leaves no new folder):

``<stem>_sr.png``
    The predicted mean, (H*s, W*s), 8-bit RGB. A greyscale file (PIL mode
    L, LA, I;16, 1, ...) gives a greyscale (mode L) PNG: the BT.601 luma of
    the mean, rounded.
``<stem>_uncertainty.png``
    The predicted sigma per pixel, colour-mapped (matplotlib's 'inferno':
    black = certain, bright yellow = uncertain), pixel for pixel the SR
    image (its top H*s rows). sigma is in grey levels ([0, 255] units): the root of the mean
    over the three channels of sigma_c^2. The colour scale runs from 0 to
    the image's 99th percentile of sigma (each image its own scale), or to
    ``--sigma_max`` grey levels (give it to compare several images on one
    scale); larger sigmas take the top colour. A legend (the label "sigma
    (grey levels)" above the colour bar with its tick values) is drawn in
    a black strip added below the map, never over it (``--nocolour_bar``:
    no strip, the map alone); the scale's top is also stored in the PNG's
    text chunk ``sigma_max_grey``.
``<stem>_log_var.npy`` (not with ``--nolog_var``)
    The raw prediction, whatever calibration is stored: float32 (H*s, W*s,
    3), v = log sigma^2 per pixel and channel with sigma in the model's
    [-1, 1] units (in grey levels sigma = 255/2 exp(v / 2);
    ``gramjax.core.pixels.sigma_grey(v)`` is the PNG's map). At 12 bytes
    per output pixel it is most of the output's size.
``<stem>_interval.png``, ``<stem>_interval.npy`` (an interval calibration)
    With a crc or rcps calibration stored in the workdir (fitted by
    ``gramjax.evaluate --calibrate_on=DIR --calibration_method=crc``): the
    half-width lambda x sigma of the interval mean +- lambda x sigma, as a
    map like the sigma map (grey levels) and, unless ``--nolog_var``, per
    pixel and channel (float32, grey levels). The console line and the
    PNG's text chunk ``holds`` say what it is ("90 % interval, CRC on N
    images of DIR"). A sigma_scaling calibration scales the sigma map (its
    ``holds`` says so); an isotonic one is refused (``--norecalibrate``).

As each image is done, one line on stdout names its outputs, sizes and
colour scale. Any image Pillow reads works (RGB, RGBA and LA with the alpha
dropped, greyscale, 16-bit, palette, CMYK, EXIF-rotated JPEG: applied
first). Large images are run in ``--tile`` x ``--tile`` LR tiles with a
halo of the model's receptive radius, which gives exactly the untiled
result at bounded memory; the ``.npy`` files are streamed to disk. Images
over Pillow's decompression-bomb limit (about 89 Mpixel) are refused.

A folder input runs every file in it (not recursing) with an image suffix
(as for training and evaluation), in name order, with a progress line on
stderr; other entries are counted in one note. A file that cannot be read
is one line ``error: PATH: why`` on stderr and skipped; the others are
still processed, and the exit status is then 1. Usage errors print one
``error:`` line and exit with status 2.
``--verbose`` adds tracebacks and library logs.

Run the same command again after an interruption and it goes on: inputs
whose outputs are all in ``--output`` already (they are renamed into place
only once complete) are skipped, with one line saying how many
(``--redo``: run them again).
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
import time

from absl import flags

from gramjax import cli
from gramjax.core import files
from gramjax.core.errors import EXIT_OK, EXIT_SOME_FAILED, UserError

# The flags behind the library's errors about the model (ModelError.what).
_MODEL_FLAGS = ('workdir', 'checkpoint', 'step')

cli.define_recalibrate_flag()
flags.adopt_module_key_flags(cli)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir of the '
                               'model (its latest checkpoint, or --step).')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'A checkpoint step '
                                  'folder, WORKDIR/checkpoints/STEP '
                                  '(instead of --workdir).')
_STEP = cli.define_step_flag()
_INPUT = flags.DEFINE_string(
    'input', None,
    'An image, or a folder of images (each the low-resolution input; not '
    'downscaled).')
_OUTPUT = flags.DEFINE_string('output', None, 'Folder for <stem>_sr.png, '
                              '<stem>_uncertainty.png and <stem>_log_var.npy '
                              '(created if needed).')
_TILE = flags.DEFINE_integer('tile', 128, 'LR tile size in pixels (0: the '
                             'whole image at once); the result does not '
                             'depend on it.', lower_bound=0)
_SIGMA_MAX = flags.DEFINE_float('sigma_max', None, 'Top of the uncertainty '
                                'colour scale in grey levels (default: each '
                                "image's 99th percentile); fix it to compare "
                                'images.')
_LOG_VAR = flags.DEFINE_bool('log_var', True, 'Write the raw float32 '
                             '<stem>_log_var.npy (about 4/5 of the output '
                             'size); --nolog_var skips it.')
_COLOUR_BAR = flags.DEFINE_bool('colour_bar', True, 'Add the colour bar '
                                'legend in a strip below the uncertainty '
                                'map; --nocolour_bar: the map alone.')
_REDO = flags.DEFINE_bool('redo', False, 'Run inputs again whose outputs '
                          'are already complete in --output (default: skip '
                          'them, so a rerun goes on after an interruption).')


def _check_flags() -> pathlib.Path:
  """Validates --sigma_max, --input and --output (absl checks --tile);
  returns the output path."""
  if not _WORKDIR.value and not _CHECKPOINT.value:
    raise UserError('give the model: --workdir=DIR (a training workdir) or '
                    '--checkpoint=DIR/checkpoints/STEP')
  if not _INPUT.value:
    raise UserError('--input is required: an image file or a folder of '
                    'images')
  sigma_max = _SIGMA_MAX.value
  if sigma_max is not None and not (math.isfinite(sigma_max)
                                    and sigma_max > 0):
    raise UserError(f'--sigma_max={sigma_max}: must be a positive number '
                    '(grey levels)')
  if not _OUTPUT.value:
    raise UserError('--output is required: the folder to write the results '
                    'to (created if needed)')
  outdir = pathlib.Path(os.path.expanduser(_OUTPUT.value))
  if outdir.exists() and not outdir.is_dir():
    raise UserError(f'--output={outdir}: exists and is not a folder')
  return outdir


def _with_flags(e: UserError) -> UserError:
  """A library error about the model, the input or the output, phrased
  with the flag that gave it."""
  # pylint: disable=g-import-not-at-top
  from gramjax.inference import predictor as inference
  if isinstance(e, inference.ModelError) and e.what in _MODEL_FLAGS:
    return UserError(f'--{e.what}={e.value}: {e.why}')
  return e


def _load(outdir: pathlib.Path):
  """(workdir, predictor, jobs still to run, jobs skipped as done)."""
  # The library is imported once the flags are good: --help and usage
  # errors answer at once, without loading JAX.
  # pylint: disable=g-import-not-at-top
  from gramjax.inference import predictor as inference
  from gramjax.inference import photos
  from gramjax.metrics import recalibration
  try:
    workdir, step = inference.resolve_model(
        _WORKDIR.value, _CHECKPOINT.value, _STEP.value)
    stored = (recalibration.load(workdir) if flags.FLAGS.recalibrate
              else None)
    if stored is not None and stored.method == 'isotonic':
      raise UserError(
          f'{recalibration.path_in(workdir)} holds an isotonic '
          'recalibration, which has no single sigma to draw: predict draws '
          'sigma scaling (sigma_scaling) or an interval (crc, rcps). Pass '
          '--norecalibrate for the raw sigma, or fit one of those with '
          'python -m gramjax.evaluate --calibration_method=...')
    interval = stored is not None and stored.interval is not None
    paths, _ = photos.list_inputs(_INPUT.value)
    jobs = photos.plan_outputs(paths, outdir, log_var=_LOG_VAR.value,
                               interval=interval)
    todo, done = ((jobs, []) if _REDO.value else
                  photos.split_done(jobs, outdir, _LOG_VAR.value, interval))
    return workdir, step, todo, done
  except recalibration.StaleCalibration as e:
    raise cli.stale_calibration(e, str(workdir)) from e
  except UserError as e:
    raise _with_flags(e) from e



def _describe(workdir, predictor, recal, n, done, outdir) -> None:
  """The lines that open a run: the model, the images, the calibration."""
  # pylint: disable=g-import-not-at-top
  from gramjax.inference import photos
  if not predictor.predicts_uncertainty:
    photos.show('note: this model was trained with the plain MSE: its '
                'variance head is untrained, so the uncertainty outputs '
                'mean nothing')
  photos.show(f'model: {workdir} step {predictor.step} '
              f'({predictor.weights} weights, x{predictor.scale}); {n} '
              f'image{"s" if n != 1 else ""} -> {outdir}')
  if done:
    photos.show(f'skipped {len(done)} image{"s" if len(done) != 1 else ""} '
                'whose outputs are already complete in the output folder '
                '(--redo runs them again)')
  if recal and recal.interval is not None:
    photos.show(f'interval map: {recal.describe()}; the sigma map and the '
                '.npy stay raw (--norecalibrate: no interval)')
  elif recal:
    photos.show(f'uncertainty map recalibrated: sigma x '
                f'{recal.values["rgb"].scale:.3f} ({recal.describe()}); the '
                '.npy holds the raw log-variance (--norecalibrate: the raw '
                'sigma map)')


def _main() -> int:
  """Validates the flags, loads the model and runs every input."""
  outdir = _check_flags()
  # pylint: disable=g-import-not-at-top
  from gramjax.inference import predictor as inference
  from gramjax.inference import photos
  workdir, step, jobs, done = _load(outdir)
  existed = outdir.exists()
  # Removed again if the model does not load (nothing written yet).
  with files.output_dir(outdir, '--output') as outdir:
    try:
      predictor = inference.load(workdir, step)
    except UserError as e:
      raise _with_flags(e) from e
    recal = (cli.stored_calibration(str(workdir), predictor.model_key(),
                                    flags.FLAGS.recalibrate)
             if predictor.predicts_uncertainty else None)
    n = len(jobs)
    _describe(workdir, predictor, recal, n, done, outdir)
    start = time.time()
    results, failures = photos.predict_all(
        predictor, jobs, outdir, tile=_TILE.value,
        sigma_max=_SIGMA_MAX.value, log_var=_LOG_VAR.value,
        verbose=cli.VERBOSE.value,
        display=photos.Display.of(recal),
        colour_bar=_COLOUR_BAR.value,
        on_result=lambda r: photos.show(r.line(), sys.stdout))
  if not results and not existed:
    try:
      outdir.rmdir()               # Every file failed: no empty folder.
    except OSError:
      pass
  photos.show(f'done: {len(results)} of {n} image{"s" if n != 1 else ""} '
              f'in {time.time() - start:.1f}s'
              + (f' ({len(done)} skipped as already done)' if done else '')
              + (f'; {len(failures)} failed (see the error lines above)'
                 if failures else ''))
  return EXIT_SOME_FAILED if failures else EXIT_OK


if __name__ == '__main__':
  cli.start(_main)
