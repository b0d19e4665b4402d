"""Measuring folders of HR images under one ``Protocol``
(``gramjax.evaluation.protocol``): each image measured, then the folder's
entry (the JSON of ``gramjax.evaluate``) and curves.

Folder figures: PSNR and SSIM are means over its images; the uncertainty
figures are pooled over all its pixels by default (as the reference code of
the sparsification and calibration literature does; a uniform sample of
them above ``POOL_VALUES``), or means over its images
(``aggregation='per_image'``), and every entry says which. Each channel
space's pooled values are cast to float64 and sorted once
(``gramjax.metrics.residuals.Residuals``), for every figure of the folder.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from gramjax import data as data_lib
from gramjax.core import progress
from gramjax.core.errors import UserError
from gramjax.evaluation import intervals
from gramjax.evaluation.protocol import Curves
from gramjax.evaluation.protocol import evaluate_image
from gramjax.evaluation.protocol import ImageResult
from gramjax.evaluation.protocol import Protocol
from gramjax.metrics import luma
from gramjax.metrics import recalibration
from gramjax.metrics import summary
from gramjax.metrics.residuals import Residuals
# At most this many values per channel space are pooled per folder (float32
# error and sigma: 256 MiB); above it every image gives the same share.
POOL_VALUES = 1 << 25

CORRELATION_OF = ('standardised errors e/sigma, pooled over the folder\'s '
                  'pixels (mean of the three channel pairs)')
QUALITY_UNITS = ('grey levels ([0, 255]); nll in nats per pixel of that '
                 'channel; ause, aurg, auce and coverage dimensionless')


@dataclasses.dataclass
class Folder:
  name: str                       # Key in the JSON and the tables.
  path: pathlib.Path
  images: list[pathlib.Path]


def resolve_folders(spec: str, key: str = 'data') -> list[Folder]:
  """``DIR[,DIR...]`` -> folders with their images; ``UserError`` naming
  ``key`` (the commands give their flag) and the bad path. Names are basenames, ``parent/basename`` where they clash."""
  parts = [p.strip() for p in (spec or '').split(',') if p.strip()]
  if not parts:
    raise UserError(f'{key} is required: one or more image folders, '
                    'comma-separated')
  folders = []
  for part in parts:
    path = pathlib.Path(os.path.expanduser(part))
    if not path.exists():
      raise UserError(f'{key}: folder {path} does not exist')
    if not path.is_dir():
      raise UserError(f'{key}: {path} is not a folder (give folders of HR '
                      'images)')
    images = data_lib.resolve_images(str(path), key=key, held_out=True)
    folders.append(Folder(path.name or str(path), path, images))
  names = [f.name for f in folders]
  for f in folders:
    if names.count(f.name) > 1:
      parent = pathlib.Path(os.path.abspath(f.path)).parent.name
      f.name = f'{parent}/{f.path.name}'
  seen = {}
  for f in folders:
    if f.name in seen:
      raise UserError(f'{key}: {seen[f.name]} and {f.path} would both be '
                      f'reported as {f.name!r} (listed twice?)')
    seen[f.name] = f.path
  return folders


@dataclasses.dataclass(eq=False)
class FolderResults:
  """One folder measured: its JSON ``entry`` (``folder_entry``), its
  per-image results, the Y channel's curves by the protocol's aggregation
  (None without uncertainty) and the share of values pooled."""
  folder: Folder
  entry: dict[str, Any]
  images: list[ImageResult]
  curves: Curves | None = None
  pool_rate: float = 1.0


def pool_rate_for(images: Sequence[pathlib.Path],
                  pool_values: int = POOL_VALUES) -> float:
  """The share of each image's values to pool so that a folder pools at
  most ``pool_values`` RGB values (sizes from the file headers)."""
  total = 0
  for path in images:
    try:
      with Image.open(path) as img:
        total += img.size[0] * img.size[1] * 3
    except OSError:
      pass              # evaluate_image names the bad file.
  return min(1.0, pool_values / total) if total else 1.0


def pooled_residuals(results: Sequence[ImageResult], channel: str
                     ) -> Residuals:
  """The pooled samples of one channel space, float64, validated."""
  return Residuals.pool(r.samples[channel] for r in results)


def pooled_correlation(results: Sequence[ImageResult]) -> float:
  """The channel correlation of the standardised errors, pooled over the
  images' pixels."""
  return luma.correlation_from_moments(sum(r.moments for r in results))


def calibrated_entry(measured: FolderResults, protocol: Protocol,
                     recal: recalibration.Recalibration) -> dict:
  """The ``uncertainty_calibrated`` that ``recal`` would give a folder
  already measured under ``protocol`` (pooled; a pooled entry's ranking
  figures reused): one measurement, several recalibrations."""
  before = (measured.entry['uncertainty']
            if protocol.aggregation == 'pooled' else None)
  out = _uncertainty_head(measured.entry, protocol, 'pooled',
                          measured.pool_rate)
  out['undefined'] = {}
  for channel in measured.images[0].samples:
    if channel == 'y' and recal.y_correlation != protocol.y_correlation:
      # Measured under another channel correlation than the fit's.
      out['y_left_out'] = (f'the folder was measured with a Y correlation '
                           f'of {protocol.y_correlation}, the fit with '
                           f'{recal.y_correlation}')
      continue
    out[channel] = recalibration.figures(
        recal.values[channel], pooled_residuals(measured.images, channel),
        before=before[channel] if before else None)
  return out


def _per_image_means(results: Sequence[ImageResult], channel: str
                     ) -> tuple[dict[str, float], dict[str, int]]:
  """Means over images of one channel space's figures, and how many images
  each NaN figure left out of its mean."""
  values = {k: np.array([r.quality[channel][k] for r in results])
            for k in results[0].quality[channel]}
  undefined = {k: int(np.isnan(v).sum()) for k, v in values.items()
               if np.isnan(v).any()}
  means = {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan
           for k, v in values.items()}
  return means, undefined


def _uncertainty_head(entry: dict, protocol: Protocol, aggregation: str,
                      pool_rate: float) -> dict[str, Any]:
  """What every uncertainty block states first: units, the channel
  correlation Y's variance assumed (and where it came from) beside the one
  measured on this folder (pooled standardised errors: shown, never used
  for the folder's own figures), the aggregation."""
  out = {'units': QUALITY_UNITS,
         'y_correlation': float(protocol.y_correlation),
         'y_correlation_from': protocol.correlation_source,
         'error_channel_correlation': entry.get('error_channel_correlation'),
         'aggregation': aggregation}
  if aggregation == 'pooled':
    out['pooled_share'] = float(pool_rate)
  return out


def calibration_summary(recal: recalibration.Recalibration) -> dict:
  """The ``calibration`` of a folder entry (the quantiles of an isotonic
  fit stay in the workdir's calibration.json)."""
  out = {'method': recal.method, 'fitted_on': recal.fitted_on,
         'images': len(recal.images), 'step': recal.step,
         'weights_digest': recal.model['digest'],
         'y_correlation': recal.y_correlation}
  if recal.interval is not None:
    out['interval'] = {'alpha': recal.interval.alpha,
                       'delta': recal.interval.delta,
                       'lambda': dict(recal.interval.lam),
                       'definition': recalibration.INTERVAL_DEFINITION}
  else:
    out['values'] = {c: {'scale': f.scale} for c, f in recal.values.items()}
  return out


def folder_entry(results: Sequence[ImageResult], protocol: Protocol,
                 step: int | None = None, pool_rate: float = 1.0
                 ) -> tuple[dict[str, Any], Curves | None]:
  """A folder's JSON entry and its Y curves: PSNR/SSIM means over its
  images; with uncertainty, its figures by the protocol's aggregation
  (module doc) and, with a recalibration, ``calibration`` and
  ``uncertainty_calibrated`` (always pooled). Each channel's pooled
  values are cast and sorted once, for all of these. ``pool_rate``: the
  share of values the images kept for pooling."""
  entry = {'psnr': float(np.mean([r.psnr for r in results])),
           'ssim': float(np.mean([r.ssim for r in results])),
           'images': len(results), 'convention': protocol.convention}
  if step is not None:
    entry['step'] = int(step)
  for k in (results[0].uncertainty if results else {}):
    entry[k] = float(np.mean([r.uncertainty[k] for r in results]))
  if results and results[0].moments is not None:
    entry['error_channel_correlation'] = pooled_correlation(results)
    entry['error_channel_correlation_of'] = CORRELATION_OF
  if not (results and results[0].samples):
    return entry, None
  recal, pooled = protocol.recalibration, protocol.aggregation == 'pooled'
  unc = entry['uncertainty'] = _uncertainty_head(
      entry, protocol, protocol.aggregation, pool_rate)
  if recal is not None and recal.interval is not None:
    entry['calibration'] = calibration_summary(recal)
    entry['interval_calibrated'] = intervals.interval_entry(
        results, recal.interval, recal.method)
    recal = None                  # No distribution to recalibrate.
  if recal is not None:
    calibrated = _uncertainty_head(entry, protocol, 'pooled', pool_rate)
    calibrated['undefined'] = {}
  undefined, curves = {}, None
  for channel in results[0].samples:
    res = pooled_residuals(results, channel) if protocol.pools else None
    if pooled:
      unc[channel] = summary.summarize(res)
    else:
      unc[channel], left_out = _per_image_means(results, channel)
      undefined.update({f'{channel}/{k}': n for k, n in left_out.items()})
    if recal is not None:
      calibrated[channel] = recalibration.figures(
          recal.values[channel], res, before=unc[channel] if pooled else None)
    if channel == 'y' and pooled:
      curves = Curves.of(res)
    elif channel == 'y' and all('y' in r.curves for r in results):
      curves = Curves.mean([r.curves['y'] for r in results])
  unc['undefined'] = undefined
  for name, n in undefined.items():
    logging.warning('%s undefined on %d of %d images (left out of its '
                    'mean)', name, n, len(results))
  if recal is not None:
    entry['calibration'] = calibration_summary(recal)
    entry['uncertainty_calibrated'] = calibrated
  return entry, curves


def folder_results(folder: Folder, protocol: Protocol, predictor=None, *,
                   label: str = '', quiet: bool = False,
                   pool_rate: float = 1.0, image_figures: bool = False
                   ) -> list[ImageResult]:
  """``evaluate_image`` on every image of ``folder``, with a progress line
  (rate, ETA) on stderr unless ``quiet``."""
  results = []
  with progress.Progress(len(folder.images), f'{label}{folder.name}',
                         interval=0.0, disable=quiet) as bar:
    for path in folder.images:
      results.append(evaluate_image(path, protocol, predictor,
                                    pool_rate=pool_rate,
                                    image_figures=image_figures))
      bar.update()
  return results


def evaluate_folder(folder: Folder, protocol: Protocol, predictor=None, *,
                    label: str = '', quiet: bool = False,
                    pool_values: int = POOL_VALUES) -> FolderResults:
  """Evaluates every image of ``folder`` (bicubic when ``predictor`` is
  None) with a progress line (rate, ETA) on stderr unless ``quiet``."""
  rate = (pool_rate_for(folder.images, pool_values) if protocol.pools
          else 0.0)
  results = folder_results(
      folder, protocol, predictor, label=label, quiet=quiet, pool_rate=rate,
      image_figures=protocol.aggregation == 'per_image')
  step = None if predictor is None else predictor.step
  entry, curves = folder_entry(results, protocol, step, rate)
  return FolderResults(folder, entry, results, curves, rate)


def evaluate_folders(folders: Sequence[Folder], protocol: Protocol,
                     predictor=None, *, label: str = '', quiet: bool = False,
                     pool_values: int = POOL_VALUES
                     ) -> dict[str, FolderResults]:
  """``{folder name: FolderResults}`` in the order given (each pooling
  at most ``pool_values`` values per channel space)."""
  return {f.name: evaluate_folder(f, protocol, predictor, label=label,
                                  quiet=quiet, pool_values=pool_values)
          for f in folders}


def entries(results: dict[str, FolderResults]) -> dict[str, dict]:
  """``{folder name: JSON entry}`` of ``evaluate_folders``'s results."""
  return {name: r.entry for name, r in results.items()}
