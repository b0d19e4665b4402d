"""Measuring super-resolution the way the SR literature does: PSNR/SSIM per
image and per folder, the predicted uncertainty's quality before and after
a recalibration, and fitting that recalibration on held-out images.

Per image (the community protocol, see ``gramjax.metrics.quality``):
  * HR: the file decoded to uint8 RGB, cropped to a multiple of the scale;
  * LR: MATLAB bicubic ``imresize(hr / 255, 1 / scale)``, rounded to uint8
    (``gramjax.core.pixels.make_lr``);
  * bicubic baseline: ``imresize(lr, scale)`` rounded to uint8;
  * model: the predicted mean as uint8, run tiled (``tile`` LR pixels);
  * PSNR/SSIM on one channel under a named convention. A greyscale file is
    measured on its grey values.
Folder figures: PSNR and SSIM are means over its images; the uncertainty
figures are pooled over all its pixels by default (as the reference code of
the sparsification and calibration literature does; a uniform sample of
them above ``POOL_VALUES``), or means over its images
(``aggregation='per_image'``), and every entry says which.

Uncertainty (models that predict it), on the region PSNR measures, in grey
levels ([0, 255] units): ``sigma_rgb_mean_grey`` / ``sigma_rgb_median_grey`` (the
per-pixel sigma, root of the channel-mean variance), ``rmse_grey`` (of the
unrounded mean, RGB), ``nll_grey`` (Gaussian NLL per pixel and channel), and
``quality['y'|'rgb']``: ``gramjax.metrics.uncertainty.summarize`` on the luma (its
variance from the channel variances under an assumed correlation of the
channel errors, ``y_correlation``, full by default) and on every channel of
every pixel; ``error_channel_correlation``: the measured one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import zlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from gramjax.metrics import calibration
from gramjax import data as data_lib
from gramjax.metrics import quality as metrics
from gramjax.core import pixels
from gramjax.core import progress
from gramjax.metrics import recalibration
from gramjax.metrics import luma
from gramjax.metrics import uncertainty
from gramjax.core.errors import UserError

AGGREGATIONS = ('pooled', 'per_image')
# At most this many values per channel space are pooled per folder (float32
# error and sigma: 256 MiB); above it every image gives the same share.
POOL_VALUES = 1 << 25

QUALITY_UNITS = ('grey levels ([0, 255]); nll in nats per pixel of that '
                 'channel; ause, aurg, auce and coverage dimensionless')


# ------------------------------------------------------------ one image --

def uncertainty_stats(mean: np.ndarray, log_var: np.ndarray,
                      hr: np.ndarray, shave: int,
                      y_correlation: float = luma.Y_CORRELATION,
                      pool_rate: float = 1.0, seed: int = 0,
                      image_figures: bool = True
                      ) -> tuple[dict[str, float], dict[str, dict], dict,
                                 dict]:
  """Per-image uncertainty figures on the region left after shaving
  ``shave`` px, in grey levels.

  ``mean``, ``log_var``: the model's (H, W, 3) outputs ([-1, 1] units);
  ``hr``: uint8 (H, W, 3). Returns ``(summary, quality, curves, samples)``
  (module doc); ``curves[channel]`` holds the sparsification and calibration
  curves, ``samples[channel]`` float32 (error, sigma) of a ``pool_rate``
  share of the values (all for 1; drawn with ``seed``), for pooling.
  Without ``image_figures`` (pooled folders need only the samples) the
  quality and curves stay empty.
  """
  cut = lambda x: x[shave:x.shape[0] - shave, shave:x.shape[1] - shave]
  mu = pixels.mean_to_grey(cut(mean))
  var = np.exp(cut(np.asarray(log_var, np.float64))) * pixels.GREY_PER_UNIT**2
  hr = cut(np.asarray(hr, np.float64))
  sigma = np.sqrt(var.mean(axis=-1))               # Per pixel.
  err2 = (hr - mu) ** 2
  nll = 0.5 * (np.log(2 * math.pi * var) + err2 / var)
  summary = {'sigma_rgb_mean_grey': float(sigma.mean()),
             'sigma_rgb_median_grey': float(np.median(sigma)),
             'rmse_grey': float(np.sqrt(err2.mean())),
             'nll_grey': float(nll.mean()),
             'error_channel_correlation':
                 luma.channel_correlation(hr - mu)}
  mu_y, var_y = luma.y_channel(mu, var, y_correlation)
  pairs = {'y': (metrics.rgb_to_y(hr) - mu_y, np.sqrt(var_y)),
           'rgb': (hr - mu, np.sqrt(var))}
  quality, curves, samples = {}, {}, {}
  rng = np.random.default_rng(seed)
  for channel, (err, sig) in pairs.items():
    if image_figures:
      quality[channel] = calibration.all_figures(err, sig)
      curves[channel] = {
          'sparsification': uncertainty.sparsification_curves(err, sig),
          'calibration': uncertainty.calibration_curve(err, sig)}
    err, sig = err.ravel(), np.broadcast_to(sig, err.shape).ravel()
    if pool_rate < 1.0:
      keep = rng.random(err.size) < pool_rate
      err, sig = err[keep], sig[keep]
    samples[channel] = (err.astype(np.float32), sig.astype(np.float32))
  return summary, quality, curves, samples


@dataclasses.dataclass
class ImageResult:
  name: str
  psnr: float
  ssim: float
  grey: bool
  uncertainty: dict[str, float] = dataclasses.field(default_factory=dict)
  quality: dict[str, dict[str, float]] = dataclasses.field(
      default_factory=dict)
  curves: dict[str, dict] = dataclasses.field(default_factory=dict, repr=False)
  # channel -> float32 (error, sigma) for pooling (uncertainty_stats).
  samples: dict[str, tuple] = dataclasses.field(default_factory=dict,
                                                repr=False)


def evaluate_image(path: str | os.PathLike, *, scale: int,
                   convention: str = 'standard', predictor=None,
                   tile: int = 128,
                   y_correlation: float = luma.Y_CORRELATION,
                   pool_rate: float = 1.0,
                   image_figures: bool = True) -> ImageResult:
  """Measures one HR file: bicubic when ``predictor`` is None, else the
  model's mean (and its uncertainty, if it predicts one; Y's variance
  assumes channel errors of correlation ``y_correlation``; a ``pool_rate``
  share of its values is kept for the folder's pooled figures; the image's
  own uncertainty figures only with ``image_figures``)."""
  path = pathlib.Path(path)
  conv = metrics.get_convention(convention)
  hr = pixels.crop_to_scale(data_lib.load_image(path), scale)
  shave = conv.shave_for(scale)
  window = metrics.SSIM_WINDOWS[conv.ssim_window].size
  pixels.require_size(hr.shape, window + 2 * shave, path,
                      f'a {window} px SSIM window after a {shave} px shave')
  lr = pixels.make_lr(hr, scale)
  extra, quality, curves, samples = {}, {}, {}, {}
  if predictor is None:
    sr = pixels.upscale_bicubic(lr, scale)
  else:
    mean, log_var = predictor(lr / 255.0, tile=tile)
    sr = pixels.mean_to_uint8(mean)
    if predictor.predicts_uncertainty:
      extra, quality, curves, samples = uncertainty_stats(
          mean, log_var, hr, shave, y_correlation, pool_rate,
          seed=zlib.crc32(path.name.encode()), image_figures=image_figures)
  grey = metrics.is_greyscale_file(path)
  psnr, ssim = metrics.measure(sr, hr, scale=scale, convention=convention,
                               grey=grey)
  return ImageResult(path.name, psnr, ssim, grey, extra, quality, curves,
                     samples)


# -------------------------------------------------------------- folders --

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


def pooled(results: Sequence[ImageResult], channel: str
           ) -> tuple[np.ndarray, np.ndarray]:
  """A folder's pooled (error, sigma) of one channel space, float64."""
  return tuple(np.concatenate([r.samples[channel][i] for r in results]
                              ).astype(np.float64) for i in (0, 1))


def quality_of(results: Sequence[ImageResult], channel: str,
               aggregation: str) -> tuple[dict[str, float], dict[str, int]]:
  """A folder's uncertainty figures of one channel space and, for
  ``per_image``, how many images each NaN metric left out of its mean."""
  if aggregation == 'pooled':
    return calibration.all_figures(*pooled(results, channel)), {}
  values = {k: np.array([r.quality[channel][k] for r in results])
            for k in results[0].quality[channel]}
  undefined = {k: int(np.isnan(v).sum()) for k, v in values.items()
               if np.isnan(v).any()}
  means = {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan
           for k, v in values.items()}
  return means, undefined


def calibrated_entry(results: Sequence[ImageResult],
                     recal: recalibration.Recalibration,
                     y_correlation: float, pool_rate: float,
                     before: dict | None = None) -> dict:
  """The ``uncertainty_calibrated`` of a folder: the recalibrated model's
  figures, pooled over its pixels (whatever the aggregation before;
  ``before``: the folder's pooled ``uncertainty``, whose ranking figures
  are reused)."""
  if recal.y_correlation != y_correlation:
    logging.warning('the recalibration was fitted with Y errors of '
                    'correlation %g, this evaluation assumes %g: its Y '
                    'figures mix the two', recal.y_correlation,
                    y_correlation)
  out = {'units': QUALITY_UNITS, 'y_correlation': float(y_correlation),
         'error_channel_correlation': float(np.mean(
             [r.uncertainty['error_channel_correlation'] for r in results])),
         'aggregation': 'pooled', 'pooled_share': float(pool_rate),
         'undefined': {}}
  for channel in results[0].samples:
    out[channel] = recalibration.figures(
        recal.values[channel], *pooled(results, channel),
        before=before[channel] if before else None)
  return out


def calibration_summary(recal: recalibration.Recalibration) -> dict:
  """The ``calibration`` of a folder entry (the quantiles of an isotonic
  fit stay in the workdir's calibration.json)."""
  return {'method': recal.method, 'fitted_on': recal.fitted_on,
          'images': len(recal.images), 'step': recal.step,
          'values': {c: {'scale': f.scale} for c, f in recal.values.items()}}


def summarize(results: Sequence[ImageResult], convention: str,
              step: int | None = None,
              y_correlation: float = luma.Y_CORRELATION,
              aggregation: str = 'pooled', pool_rate: float = 1.0,
              recal: recalibration.Recalibration | None = None
              ) -> dict[str, Any]:
  """A folder's JSON entry: PSNR/SSIM means over its images; with
  uncertainty, its figures by ``aggregation`` (module doc), the channel
  correlation Y's variance assumed (``y_correlation``) and the images left
  out of a per-image mean because a metric was undefined there; with
  ``recal`` also ``calibration`` and ``uncertainty_calibrated``.
  ``pool_rate``: the share of values the images kept for pooling."""
  if aggregation not in AGGREGATIONS:
    raise UserError(f'aggregation={aggregation!r}: use one of '
                    f'{", ".join(AGGREGATIONS)}')
  entry = {'psnr': float(np.mean([r.psnr for r in results])),
           'ssim': float(np.mean([r.ssim for r in results])),
           'images': len(results),
           'convention': convention}
  if step is not None:
    entry['step'] = int(step)
  for k in (results[0].uncertainty if results else {}):
    entry[k] = float(np.mean([r.uncertainty[k] for r in results]))
  if results and results[0].samples:
    # The channel correlation assumed for Y beside the one measured (the
    # mean over images of each image's mean correlation).
    unc = entry['uncertainty'] = {
        'units': QUALITY_UNITS, 'y_correlation': float(y_correlation),
        'error_channel_correlation': entry.get('error_channel_correlation'),
        'aggregation': aggregation}
    if aggregation == 'pooled':
      unc['pooled_share'] = float(pool_rate)
    undefined = {}
    for channel in results[0].samples:
      unc[channel], left_out = quality_of(results, channel, aggregation)
      undefined.update({f'{channel}/{k}': n for k, n in left_out.items()})
    unc['undefined'] = undefined
    for name, n in undefined.items():
      logging.warning('%s undefined on %d of %d images (left out of its '
                      'mean)', name, n, len(results))
    if recal is not None:
      entry['calibration'] = calibration_summary(recal)
      entry['uncertainty_calibrated'] = calibrated_entry(
          results, recal, y_correlation, pool_rate,
          unc if aggregation == 'pooled' else None)
  return entry


def pool_rate_for(images: Sequence[pathlib.Path]) -> float:
  """The share of each image's values to pool so that a folder pools at
  most ``POOL_VALUES`` RGB values (sizes from the file headers)."""
  total = 0
  for path in images:
    try:
      with Image.open(path) as img:
        total += img.size[0] * img.size[1] * 3
    except OSError:
      pass              # evaluate_image names the bad file.
  return min(1.0, POOL_VALUES / total) if total else 1.0


def folder_curves(results: Sequence[ImageResult], channel: str = 'y',
                  aggregation: str = 'pooled'
                  ) -> dict[str, dict[str, np.ndarray]] | None:
  """A folder's sparsification and calibration curves: of its pooled
  values, or per-image curves averaged over its images (None for bicubic
  or MSE models)."""
  if not results or not results[0].samples:
    return None
  if aggregation == 'pooled' and results[0].samples:
    err, sig = pooled(results, channel)
    sp = [uncertainty.sparsification_curves(err, sig)]
    cal = [uncertainty.calibration_curve(err, sig)]
  else:
    sp = [r.curves[channel]['sparsification'] for r in results]
    cal = [r.curves[channel]['calibration'] for r in results]
  avg = lambda items, key: np.nanmean([np.asarray(i[key]) for i in items],
                                      axis=0)
  return {'sparsification': {k: avg(sp, k) for k in
                             ('fractions', 'model', 'oracle', 'random')},
          'calibration': {'expected': avg(cal, 'expected'),
                          'observed': avg(cal, 'observed')}}


def folder_results(folder: Folder, *, scale: int, convention: str,
                   predictor=None, tile: int = 128, label: str = '',
                   quiet: bool = False,
                   y_correlation: float = luma.Y_CORRELATION,
                   pool_rate: float = 1.0, image_figures: bool = False
                   ) -> list[ImageResult]:
  """``evaluate_image`` on every image of ``folder``, with a progress line
  (rate, ETA) on stderr unless ``quiet``."""
  results = []
  with progress.Progress(len(folder.images), f'{label}{folder.name}',
                         interval=0.0, disable=quiet) as bar:
    for path in folder.images:
      results.append(evaluate_image(path, scale=scale, convention=convention,
                                    predictor=predictor, tile=tile,
                                    y_correlation=y_correlation,
                                    pool_rate=pool_rate,
                                    image_figures=image_figures))
      bar.update()
  return results


def evaluate_folder(folder: Folder, *, scale: int, convention: str,
                    predictor=None, tile: int = 128, label: str = '',
                    quiet: bool = False,
                    y_correlation: float = luma.Y_CORRELATION,
                    aggregation: str = 'pooled',
                    recal: recalibration.Recalibration | None = None
                    ) -> tuple[dict[str, Any], list[ImageResult]]:
  """Evaluates every image of ``folder`` with a progress line (rate, ETA)
  on stderr unless ``quiet``; returns its entry and the per-image results
  (with ``recal``, the entry has the recalibrated figures too)."""
  rate = (pool_rate_for(folder.images)
          if aggregation == 'pooled' or recal is not None else 0.0)
  results = folder_results(folder, scale=scale, convention=convention,
                           predictor=predictor, tile=tile, label=label,
                           quiet=quiet, y_correlation=y_correlation,
                           pool_rate=rate,
                           image_figures=aggregation == 'per_image')
  step = None if predictor is None else predictor.step
  return summarize(results, convention, step, y_correlation, aggregation,
                   rate, recal), results


def evaluate_folders(folders: Sequence[Folder], *, scale: int,
                     convention: str, predictor=None, tile: int = 128,
                     label: str = '', quiet: bool = False,
                     y_correlation: float = luma.Y_CORRELATION,
                     aggregation: str = 'pooled',
                     recal: recalibration.Recalibration | None = None):
  """``{folder name: entry}`` and ``{folder name: [ImageResult]}``."""
  entries, per_image = {}, {}
  for folder in folders:
    entries[folder.name], per_image[folder.name] = evaluate_folder(
        folder, scale=scale, convention=convention, predictor=predictor,
        tile=tile, label=label, quiet=quiet, y_correlation=y_correlation,
        aggregation=aggregation, recal=recal)
  return entries, per_image
