"""The CPU-scale study's evaluation of one trained model
(benchmarks/reproduce_cpu_scale.py): its best checkpoint (chosen on
held-out training-distribution images while it trained), measured on the
test folders and on its calibration images, every calibration method
fitted on the latter, and a conformal split study among them. Cached in
the run's workdir under a key that holds a digest of the code."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import sys
import time

import numpy as np

from gramjax.core.errors import UserError
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation import intervals
from gramjax.evaluation import recalibrate as recal_fit
from gramjax.evaluation.protocol import Protocol
from gramjax.inference import predictor as inference
from gramjax.metrics import conformal
from gramjax.metrics import recalibration
from gramjax.state import checkpoint as ckpt_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Bump when what evaluate_model stores changes (the code digest in the key
# also redoes an evaluation whenever gramjax/ or this module changes).
EVAL_VERSION = 3
# At most this many values per channel space pooled per folder (each image
# gives the same share): the pooled figures sort them, many times per model.
POOL_VALUES = 1 << 23
SPLITS = 100                  # Random halvings of the calibration images.


def code_digest() -> str:
  """sha256 (12 hex) of every Python file of gramjax/ and of the study's
  evaluation code: an evaluation made by other code is redone."""
  h = hashlib.sha256()
  paths = sorted((ROOT / 'gramjax').rglob('*.py')) + [
      pathlib.Path(__file__).resolve()]
  for path in paths:
    h.update(str(path.relative_to(ROOT)).encode())
    h.update(path.read_bytes())
  return h.hexdigest()[:12]


def _fit_every_method(measured: recal_fit.Measured) -> tuple[dict, dict]:
  """Every method of ``recalibration.ALL_METHODS`` fitted on the measured
  calibration images; returns (fits, {method: why it was refused})."""
  fits, refused = {}, {}
  for method in recalibration.ALL_METHODS:
    try:
      fits[method] = recal_fit.fit_measured(measured, method)
    except UserError as e:           # e.g. rcps certifying nothing.
      refused[method] = str(e)
  return fits, refused


def _calibrated(results, entry, protocol, fits) -> None:
  """Adds to a folder's ``entry`` (its measured ``results``) what each fit
  gives it: ``uncertainty_<method>`` for sigma scaling and isotonic,
  ``interval_<method>`` for crc and rcps, and the sigma-scaling factor
  this folder itself would have needed (RGB)."""
  measured = folders_lib.FolderResults(None, entry, results, None,
                                       entry['uncertainty']['pooled_share'])
  for method, recal in fits.items():
    if recal.interval is not None:
      entry[f'interval_{method}'] = intervals.interval_entry(
          results, recal.interval, method)
    else:
      entry[f'uncertainty_{method}'] = folders_lib.calibrated_entry(
          measured, protocol, recal)
  res = folders_lib.pooled_residuals(results, 'rgb')
  entry['ideal_scale_rgb'] = float(np.sqrt(np.mean((res.err / res.sigma)**2)))


def _curves(results, fits) -> dict:
  """The RGB reliability curve (observed share inside each central
  interval of ``uncertainty.DEFAULT_ALPHAS``) raw and after sigma
  scaling."""
  res = folders_lib.pooled_residuals(results, 'rgb')
  out = {'raw': recalibration.calibration_curve_after(
      recalibration.ChannelFit(1.0), res).observed.tolist()}
  if 'sigma_scaling' in fits:
    out['sigma_scaling'] = recalibration.calibration_curve_after(
        fits['sigma_scaling'].values['rgb'], res).observed.tolist()
  return out


def _measure(predictor, workdir, folders, protocol, calibrate_on) -> dict:
  """The evaluation itself (``evaluate_model``'s result)."""
  result = {'step': predictor.step, 'curves': {}}
  if not predictor.predicts_uncertainty:
    measured = folders_lib.evaluate_folders(folders, protocol, predictor,
                                            quiet=True,
                                            pool_values=POOL_VALUES)
    result['folders'] = folders_lib.entries(measured)
    return result
  fitted_on, images = recal_fit.calibration_images(calibrate_on, workdir)
  try:
    cal = recal_fit.measure(predictor, images, protocol, fitted_on=fitted_on,
                            quiet=True, pool_values=POOL_VALUES)
  except ValueError as e:      # sigma not finite and > 0: a diverged head.
    result['uncertainty_error'] = str(e)
    result['folders'] = folders_lib.entries(folders_lib.evaluate_folders(
        folders, protocol, predictor.without_uncertainty(), quiet=True,
        pool_values=POOL_VALUES))
    return result
  fits, result['refused'] = _fit_every_method(cal)
  for recal in fits.values():
    recal_fit.check_disjoint(recal, folders)
  result['calibration'] = {m: folders_lib.calibration_summary(r)
                           for m, r in fits.items()}
  # Y under the channel correlation measured on the calibration images.
  protocol = dataclasses.replace(protocol, y_correlation=cal.y_correlation)
  try:
    measured = folders_lib.evaluate_folders(folders, protocol, predictor,
                                            quiet=True,
                                            pool_values=POOL_VALUES)
  except ValueError as e:
    result['uncertainty_error'] = str(e)
    result['folders'] = folders_lib.entries(folders_lib.evaluate_folders(
        folders, protocol, predictor.without_uncertainty(), quiet=True,
        pool_values=POOL_VALUES))
    return result
  result['folders'] = folders_lib.entries(measured)
  for name, folder in measured.items():
    _calibrated(folder.images, result['folders'][name], protocol, fits)
    result['curves'][name] = _curves(folder.images, fits)
  # The calibration images themselves (in sample): what the fits do where
  # no shift can be blamed.
  rate = folders_lib.pool_rate_for(images, POOL_VALUES)
  entry, _ = folders_lib.folder_entry(cal.results, protocol, predictor.step,
                                      rate)
  entry['in_sample'] = True
  _calibrated(cal.results, entry, protocol, fits)
  result['calibration_images'] = entry
  result['curves']['calibration_images'] = _curves(cal.results, fits)
  try:
    result['conformal'] = intervals.split_study(
        cal.results, splits=SPLITS, alpha=conformal.ALPHA,
        delta=conformal.DELTA, seed=0, quiet=True)
  except ValueError as e:   # Too few calibration images to halve.
    result['conformal_error'] = f'{calibrate_on}: {e}'
    print(f'warning: no split study: {result["conformal_error"]}',
          file=sys.stderr)
  return result


def evaluate_model(workdir: pathlib.Path, folders, scale: int, fresh: bool,
                   calibrate_on: str) -> dict:
  """One trained model's best checkpoint: PSNR/SSIM and (for likelihood
  models) every uncertainty figure on each test folder and on the
  calibration images (``calibrate_on``, e.g. ``heldout[5:]``), before and
  after every calibration method fitted on those, and a split study of
  crc, rcps and constant width among them. Kept in
  WORKDIR/study_eval.json while its key (step, folders, code) holds
  (``fresh`` redoes it)."""
  step = ckpt_lib.best_step(workdir) or inference.latest_step(workdir)
  key = {'version': EVAL_VERSION, 'step': step, 'code': code_digest(),
         'folders': [str(f.path) for f in folders],
         'calibrate_on': calibrate_on, 'pool_values': POOL_VALUES}
  cache = workdir / 'study_eval.json'
  if cache.exists() and not fresh:
    saved = json.loads(cache.read_text())
    if saved.get('key') == key:
      return saved['result']
  start = time.time()
  result = _measure(inference.load(workdir, step), workdir, folders,
                    Protocol(scale), calibrate_on)
  result['pool_values'] = POOL_VALUES
  result['eval_seconds'] = time.time() - start
  cache.write_text(json.dumps({'key': key, 'result': result},
                              default=_json_default))
  return result


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  raise TypeError(type(value))

