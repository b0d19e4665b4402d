"""Measuring super-resolution the way the SR literature does: PSNR/SSIM per
image and per folder, the predicted uncertainty's quality, and samples.

Per image (the community protocol, see ``gramjax.metrics``):
  * HR: the file decoded to uint8 RGB, cropped to a multiple of the scale;
  * LR: MATLAB bicubic ``imresize(hr / 255, 1 / scale)``, rounded to uint8
    (``gramjax.pixels.make_lr``);
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
``quality['y'|'rgb']``: ``gramjax.uncertainty.summarize`` on the luma (its
variance from the channel variances under an assumed correlation of the
channel errors, ``y_correlation``, full by default) and on every channel of
every pixel; ``error_channel_correlation``: the measured one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import time
import zlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from gramjax import calibration
from gramjax import data as data_lib
from gramjax import metrics
from gramjax import pixels
from gramjax import progress
from gramjax import uncertainty
from gramjax import visualize
from gramjax.errors import UserError

AGGREGATIONS = ('pooled', 'per_image')
# At most this many values per channel space are pooled per folder (float32
# error and sigma: 256 MiB); above it every image gives the same share.
POOL_VALUES = 1 << 25

QUALITY_UNITS = ('grey levels ([0, 255]); nll in nats per pixel of that '
                 'channel; ause, aurg, auce and coverage dimensionless')


# ------------------------------------------------------------ one image --

def quality_figures(err, sigma) -> dict[str, float]:
  """Every uncertainty figure of one channel space: ours
  (``uncertainty.summarize``) and the field's (``calibration.summarize``)."""
  return {**uncertainty.summarize(err, sigma),
          **calibration.summarize(err, sigma)}


def uncertainty_stats(mean: np.ndarray, log_var: np.ndarray,
                      hr: np.ndarray, shave: int,
                      y_correlation: float = uncertainty.Y_CORRELATION,
                      pool_rate: float = 1.0, seed: int = 0
                      ) -> tuple[dict[str, float], dict[str, dict], dict,
                                 dict]:
  """Per-image uncertainty figures on the region left after shaving
  ``shave`` px, in grey levels.

  ``mean``, ``log_var``: the model's (H, W, 3) outputs ([-1, 1] units);
  ``hr``: uint8 (H, W, 3). Returns ``(summary, quality, curves, samples)``
  (module doc); ``curves[channel]`` holds the sparsification and calibration
  curves, ``samples[channel]`` float32 (error, sigma) of a ``pool_rate``
  share of the values (all for 1; drawn with ``seed``), for pooling.
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
                 uncertainty.channel_correlation(hr - mu)}
  mu_y, var_y = uncertainty.y_channel(mu, var, y_correlation)
  pairs = {'y': (metrics.rgb_to_y(hr) - mu_y, np.sqrt(var_y)),
           'rgb': (hr - mu, np.sqrt(var))}
  quality, curves, samples = {}, {}, {}
  rng = np.random.default_rng(seed)
  for channel, (err, sig) in pairs.items():
    quality[channel] = quality_figures(err, sig)
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
                   y_correlation: float = uncertainty.Y_CORRELATION,
                   pool_rate: float = 1.0) -> ImageResult:
  """Measures one HR file: bicubic when ``predictor`` is None, else the
  model's mean (and its uncertainty, if it predicts one; Y's variance
  assumes channel errors of correlation ``y_correlation``; a ``pool_rate``
  share of its values is kept for the folder's pooled figures)."""
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
          seed=zlib.crc32(path.name.encode()))
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


def resolve_folders(spec: str, key: str = '--data') -> list[Folder]:
  """``DIR[,DIR...]`` -> folders with their images; ``UserError`` naming
  the bad path. Names are basenames, ``parent/basename`` where they clash."""
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
    return quality_figures(*pooled(results, channel)), {}
  values = {k: np.array([r.quality[channel][k] for r in results])
            for k in results[0].quality[channel]}
  undefined = {k: int(np.isnan(v).sum()) for k, v in values.items()
               if np.isnan(v).any()}
  means = {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan
           for k, v in values.items()}
  return means, undefined


def summarize(results: Sequence[ImageResult], convention: str,
              step: int | None = None,
              y_correlation: float = uncertainty.Y_CORRELATION,
              aggregation: str = 'pooled', pool_rate: float = 1.0
              ) -> dict[str, Any]:
  """A folder's JSON entry: PSNR/SSIM means over its images; with
  uncertainty, its figures by ``aggregation`` (module doc), the channel
  correlation Y's variance assumed (``y_correlation``) and the images left
  out of a per-image mean because a metric was undefined there.
  ``pool_rate``: the share of values the images kept for pooling."""
  if aggregation not in AGGREGATIONS:
    raise UserError(f'--aggregation={aggregation}: use one of '
                    f'{", ".join(AGGREGATIONS)}')
  entry = {'psnr': float(np.mean([r.psnr for r in results])),
           'ssim': float(np.mean([r.ssim for r in results])),
           'images': len(results),
           'convention': convention}
  if step is not None:
    entry['step'] = int(step)
  for k in (results[0].uncertainty if results else {}):
    entry[k] = float(np.mean([r.uncertainty[k] for r in results]))
  if results and results[0].quality:
    unc = entry['uncertainty'] = {
        'units': QUALITY_UNITS, 'y_correlation': float(y_correlation),
        'aggregation': aggregation}
    if aggregation == 'pooled':
      unc['pooled_share'] = float(pool_rate)
    undefined = {}
    for channel in results[0].quality:
      unc[channel], left_out = quality_of(results, channel, aggregation)
      undefined.update({f'{channel}/{k}': n for k, n in left_out.items()})
    unc['undefined'] = undefined
    for name, n in undefined.items():
      logging.warning('%s undefined on %d of %d images (left out of its '
                      'mean)', name, n, len(results))
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
  if not results or not results[0].curves:
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


def evaluate_folder(folder: Folder, *, scale: int, convention: str,
                    predictor=None, tile: int = 128, label: str = '',
                    quiet: bool = False,
                    y_correlation: float = uncertainty.Y_CORRELATION,
                    aggregation: str = 'pooled'
                    ) -> tuple[dict[str, Any], list[ImageResult]]:
  """Evaluates every image of ``folder`` with a progress line (rate, ETA)
  on stderr unless ``quiet``; returns its entry and the per-image results."""
  results = []
  rate = pool_rate_for(folder.images) if aggregation == 'pooled' else 0.0
  with progress.Progress(len(folder.images), f'{label}{folder.name}',
                         interval=0.0, disable=quiet) as bar:
    for path in folder.images:
      results.append(evaluate_image(path, scale=scale, convention=convention,
                                    predictor=predictor, tile=tile,
                                    y_correlation=y_correlation,
                                    pool_rate=rate))
      bar.update()
  step = None if predictor is None else predictor.step
  return summarize(results, convention, step, y_correlation, aggregation,
                   rate), results


def evaluate_folders(folders: Sequence[Folder], *, scale: int,
                     convention: str, predictor=None, tile: int = 128,
                     label: str = '', quiet: bool = False,
                     y_correlation: float = uncertainty.Y_CORRELATION,
                     aggregation: str = 'pooled'):
  """``{folder name: entry}`` and ``{folder name: [ImageResult]}``."""
  entries, per_image = {}, {}
  for folder in folders:
    entries[folder.name], per_image[folder.name] = evaluate_folder(
        folder, scale=scale, convention=convention, predictor=predictor,
        tile=tile, label=label, quiet=quiet, y_correlation=y_correlation,
        aggregation=aggregation)
  return entries, per_image


# ----------------------------------------------------- while training --

EVALUATOR_KEYS = {'folder': None, 'every': None, 'convention': 'standard',
                  'max_images': 0, 'tile': 128}


@dataclasses.dataclass
class Evaluator:
  """A validation set measured while training (``config.evals.<name>``)."""
  name: str
  images: list[pathlib.Path]
  every: int
  convention: str = 'standard'
  tile: int = 128

  def run(self, predictor) -> dict[str, float]:
    """``val/<name>/{psnr,ssim}`` and, for models that predict uncertainty,
    ``nll``, ``ause`` and ``coverage_90`` (RGB, grey levels), plus the
    seconds it took."""
    start = time.time()
    rate = pool_rate_for(self.images)
    results = [evaluate_image(p, scale=predictor.scale,
                              convention=self.convention,
                              predictor=predictor, tile=self.tile,
                              pool_rate=rate)
               for p in self.images]
    entry = summarize(results, self.convention, pool_rate=rate)
    out = {'psnr': entry['psnr'], 'ssim': entry['ssim']}
    for key in ('nll', 'ause', 'coverage_90'):
      if 'uncertainty' in entry:
        out[key] = entry['uncertainty']['rgb'][key]
    out['seconds'] = time.time() - start
    return {f'val/{self.name}/{k}': float(v) for k, v in out.items()}


def evaluators_from_config(config) -> list[Evaluator]:
  """``config.evals`` (name -> {folder, every, convention, max_images,
  tile}) as evaluators. A folder that does not exist is logged and left
  out (training goes on); a bad key or value is a ``UserError``."""
  evaluators = []
  for name, spec in dict(config.get('evals') or {}).items():
    key = f'config.evals.{name}'
    spec = dict(spec)
    unknown = set(spec) - set(EVALUATOR_KEYS)
    if unknown:
      raise UserError(f'{key}: unknown key(s) {sorted(unknown)}; use '
                      f'{", ".join(EVALUATOR_KEYS)}')
    spec = {k: spec.get(k, default) for k, default in EVALUATOR_KEYS.items()}
    if not spec['folder'] or not isinstance(spec['every'], int) or (
        spec['every'] < 1):
      raise UserError(f'{key} needs a folder and every >= 1 (steps), got '
                      f'folder={spec["folder"]!r}, every={spec["every"]!r}')
    if spec['convention'] not in metrics.CONVENTIONS:
      raise UserError(f'{key}.convention={spec["convention"]!r}: use one of '
                      f'{", ".join(metrics.CONVENTIONS)}')
    if spec['max_images'] < 0 or spec['tile'] < 0:
      raise UserError(f'{key}: max_images and tile must be >= 0 (0: all '
                      'images / no tiling)')
    folder = str(spec['folder'])
    if not folder.startswith('builtin:') and not pathlib.Path(
        os.path.expanduser(folder)).exists():
      logging.warning('validation set %s: %s does not exist; training goes '
                      'on without it', name, folder)
      continue
    images = data_lib.resolve_images(folder, key=f'{key}.folder',
                                     held_out=True)
    if spec['max_images']:
      images = images[:spec['max_images']]
    logging.info('validation set %s: %d image(s) from %s every %d steps',
                 name, len(images), folder, spec['every'])
    evaluators.append(Evaluator(name, images, spec['every'],
                                spec['convention'], spec['tile']))
  return evaluators


# -------------------------------------------------------------- samples --

def write_samples(predictor, spec: str, outdir: pathlib.Path) -> list[dict]:
  """Super-resolves each image of ``spec`` (a data spec, e.g.
  ``config.data.sample_images``) and writes ``<stem>_mean.png``,
  ``<stem>_uncertainty.png`` (sigma in grey levels, colour-mapped),
  ``<stem>_bicubic.png`` and ``samples.json`` (PSNR-Y of both under the
  standard convention, sigma median and 99th percentile)."""
  scale = predictor.scale
  outdir.mkdir(parents=True, exist_ok=True)
  results = []
  for path in data_lib.resolve_images(spec, key='config.data.sample_images',
                                      held_out=True):
    hr = pixels.crop_to_scale(data_lib.load_image(path), scale)
    lr = pixels.make_lr(hr, scale)
    mean, log_var = predictor(lr / 255.0)
    sr = pixels.mean_to_uint8(mean)
    bic = pixels.upscale_bicubic(lr, scale)
    sigma = pixels.sigma_grey(log_var)
    visualize.save_png(outdir / f'{path.stem}_mean.png', sr)
    visualize.save_png(outdir / f'{path.stem}_bicubic.png', bic)
    visualize.save_png(outdir / f'{path.stem}_uncertainty.png',
                       visualize.colormap(sigma))
    grey = metrics.is_greyscale_file(path)
    result = {'image': path.name,
              'psnr_y': metrics.measure(sr, hr, scale=scale, grey=grey)[0],
              'psnr_y_bicubic': metrics.measure(bic, hr, scale=scale,
                                                grey=grey)[0],
              'sigma_grey_median': float(np.median(sigma)),
              'sigma_grey_p99': float(np.percentile(sigma, 99))}
    logging.info(
        'sample %s: PSNR-Y %.2f dB (bicubic %.2f dB), sigma median %.2f / '
        'p99 %.2f grey levels -> %s', path.name, result['psnr_y'],
        result['psnr_y_bicubic'], result['sigma_grey_median'],
        result['sigma_grey_p99'], outdir)
    result['weights'] = predictor.weights
    results.append(result)
  (outdir / 'samples.json').write_text(json.dumps(results, indent=2))
  return results
