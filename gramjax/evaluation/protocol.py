"""Measuring one image the way the SR literature does, under one
``Protocol`` (scale, convention, tile, aggregation, Y correlation,
recalibration) that every evaluation function takes once; folders are
``gramjax.evaluation.folders``.

Per image (the community protocol, see ``gramjax.metrics.quality``):
  * HR: the file decoded to uint8 RGB, cropped to a multiple of the scale;
  * LR: MATLAB bicubic ``imresize(hr / 255, 1 / scale)``, rounded to uint8
    (``gramjax.core.pixels.make_lr``);
  * bicubic baseline: ``imresize(lr, scale)`` rounded to uint8;
  * model: the predicted mean as uint8, run tiled (``tile`` LR pixels);
  * PSNR/SSIM on one channel under a named convention. A greyscale file is
    measured on its grey values.

Uncertainty (models that predict it), on the region PSNR measures, in grey
levels ([0, 255] units): ``sigma_rgb_mean_grey`` / ``sigma_rgb_median_grey``
(the per-pixel sigma, root of the channel-mean variance), ``rmse_grey`` (of
the unrounded mean, RGB), ``nll_grey`` (Gaussian NLL per pixel and channel),
and ``quality['y'|'rgb']``: ``gramjax.metrics.summary.summarize`` on the luma
(its variance from the channel variances under an assumed correlation of the
channel errors, ``y_correlation``, full by default) and on every channel of
every pixel; ``error_channel_correlation``: the measured one, the Pearson
correlation of the standardised errors e/sigma (mean of the three channel
pairs; what the Y variance assumes), with the sums that pool it over a
folder (``moments``, ``gramjax.metrics.luma.standardized_moments``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import zlib
from typing import Sequence

import numpy as np

from gramjax import data as data_lib
from gramjax.core import pixels
from gramjax.core.errors import UserError
from gramjax.metrics import luma
from gramjax.metrics import quality as metrics
from gramjax.metrics.recalibration import Recalibration
from gramjax.metrics import summary
from gramjax.metrics import uncertainty
from gramjax.metrics.residuals import Residuals

AGGREGATIONS = ('pooled', 'per_image')


# ------------------------------------------------------------- protocol --

CHANNEL_SPACES = ('y', 'rgb')


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How images are measured, given once to every function below.

  ``scale``: the upscaling factor; ``convention``: a PSNR/SSIM convention
  of ``gramjax.metrics.quality.CONVENTIONS``; ``tile``: LR tile size for
  the model (0: whole image); ``aggregation``: a folder's uncertainty
  figures pooled over its pixels or per-image means (``AGGREGATIONS``);
  ``y_correlation``: the channel-error correlation Y's variance assumes;
  ``recalibration``: figures also after this fit (``with_recalibration``
  also takes its Y correlation, measured on its images); ``channels``: the channel
  spaces whose uncertainty is measured. A bad value is a ``UserError``
  naming its field.
  """
  scale: int
  convention: str = 'standard'
  tile: int = 128
  aggregation: str = 'pooled'
  y_correlation: float = luma.Y_CORRELATION
  recalibration: Recalibration | None = None
  channels: tuple[str, ...] = CHANNEL_SPACES

  def __post_init__(self):
    checks = {
        'scale': (isinstance(self.scale, int) and self.scale >= 1,
                  'an integer >= 1'),
        'convention': (self.convention in metrics.CONVENTIONS,
                       f'one of {", ".join(metrics.CONVENTIONS)}'),
        'tile': (isinstance(self.tile, int) and self.tile >= 0,
                 'an integer >= 0 (0: no tiling)'),
        'aggregation': (self.aggregation in AGGREGATIONS,
                        f'one of {", ".join(AGGREGATIONS)}'),
        'y_correlation': (luma.CORRELATION_RANGE[0] <= self.y_correlation
                          <= luma.CORRELATION_RANGE[1],
                          'in [{}, {}]'.format(*luma.CORRELATION_RANGE)),
        'channels': (bool(self.channels) and
                     set(self.channels) <= set(CHANNEL_SPACES),
                     f'some of {", ".join(CHANNEL_SPACES)}')}
    for key, (ok, wanted) in checks.items():
      if not ok:
        raise UserError(f'{key}={getattr(self, key)!r}: use {wanted}')

  def with_recalibration(self, recal) -> 'Protocol':
    """This protocol with ``recal`` (None: none) and, with one, the Y
    correlation measured on its calibration images."""
    if recal is None:
      return dataclasses.replace(self, recalibration=None)
    return dataclasses.replace(self, recalibration=recal,
                               y_correlation=recal.y_correlation)

  @property
  def correlation_source(self) -> str:
    """Where ``y_correlation`` comes from, for the JSON."""
    if self.recalibration is not None:
      return ('measured on the calibration images '
              f'({self.recalibration.fitted_on})')
    return 'assumed (the default, or as given)'

  @property
  def pools(self) -> bool:
    """Whether the images keep samples for pooled figures."""
    return self.aggregation == 'pooled' or self.recalibration is not None


# ------------------------------------------------------------ one image --

@dataclasses.dataclass(frozen=True, eq=False)
class Curves:
  """The sparsification and calibration curves of one channel space."""
  sparsification: uncertainty.Sparsification
  calibration: uncertainty.CalibrationCurve

  @classmethod
  def of(cls, res: Residuals) -> 'Curves':
    return cls(uncertainty.sparsification_curves(res),
               uncertainty.calibration_curve(res))

  @classmethod
  def mean(cls, items: Sequence['Curves']) -> 'Curves':
    """Every field averaged over ``items`` (NaN left out)."""
    def avg(objs):
      return type(objs[0])(**{
          f.name: np.nanmean([getattr(o, f.name) for o in objs], axis=0)
          for f in dataclasses.fields(objs[0])})
    return cls(avg([c.sparsification for c in items]),
               avg([c.calibration for c in items]))


@dataclasses.dataclass(eq=False)
class ImageUncertainty:
  """One image's uncertainty (``image_uncertainty``): ``summary`` (module
  doc: sigma, rmse, nll, channel correlation), per channel space its
  ``quality`` (``summary.summarize``) and ``curves`` (image figures only),
  float32 (error, sigma) ``samples`` for pooling, and the standardised
  errors' ``moments`` (13,) for a pooled channel correlation."""
  summary: dict[str, float]
  quality: dict[str, dict[str, float]]
  curves: dict[str, Curves]
  samples: dict[str, tuple[np.ndarray, np.ndarray]]
  moments: np.ndarray | None = None


def image_uncertainty(mean: np.ndarray, log_var: np.ndarray,
                      hr: np.ndarray, shave: int, protocol: Protocol, *,
                      pool_rate: float = 1.0, seed: int = 0,
                      image_figures: bool = True) -> ImageUncertainty:
  """Uncertainty figures of one image on the region left after shaving
  ``shave`` px, in grey levels.

  ``mean``, ``log_var``: the model's (H, W, 3) outputs ([-1, 1] units);
  ``hr``: uint8 (H, W, 3). A ``pool_rate`` share of the values (all for
  1; drawn with ``seed``) is kept as samples; ``image_figures``: also the
  image's own figures and curves (pooled folders need only the samples).
  """
  cut = lambda x: x[shave:x.shape[0] - shave, shave:x.shape[1] - shave]
  mu = pixels.mean_to_grey(cut(mean))
  var = np.exp(cut(np.asarray(log_var, np.float64))) * pixels.GREY_PER_UNIT**2
  hr = cut(np.asarray(hr, np.float64))
  sigma = np.sqrt(var.mean(axis=-1))               # Per pixel.
  err2 = (hr - mu) ** 2
  nll = 0.5 * (np.log(2 * math.pi * var) + err2 / var)
  moments = luma.standardized_moments(hr - mu, np.sqrt(var))
  out = ImageUncertainty({
      'sigma_rgb_mean_grey': float(sigma.mean()),
      'sigma_rgb_median_grey': float(np.median(sigma)),
      'rmse_grey': float(np.sqrt(err2.mean())),
      'nll_grey': float(nll.mean()),
      'error_channel_correlation': luma.correlation_from_moments(moments)},
      {}, {}, {}, moments)
  mu_y, var_y = luma.y_channel(mu, var, protocol.y_correlation)
  pairs = {'y': lambda: (metrics.rgb_to_y(hr) - mu_y, np.sqrt(var_y)),
           'rgb': lambda: (hr - mu, np.sqrt(var))}
  rng = np.random.default_rng(seed)
  for channel in (c for c in CHANNEL_SPACES if c in protocol.channels):
    err, sig = pairs[channel]()
    if image_figures:
      res = Residuals.of(err, sig)
      out.quality[channel] = summary.summarize(res)
      out.curves[channel] = Curves.of(res)
    err, sig = err.ravel(), np.broadcast_to(sig, err.shape).ravel()
    if pool_rate < 1.0:
      keep = rng.random(err.size) < pool_rate
      err, sig = err[keep], sig[keep]
    out.samples[channel] = (err.astype(np.float32), sig.astype(np.float32))
  return out


@dataclasses.dataclass(eq=False)
class ImageResult:
  """One image's figures: PSNR/SSIM and, for a model that predicts it, its
  ``ImageUncertainty``'s parts."""
  name: str
  psnr: float
  ssim: float
  grey: bool
  uncertainty: dict[str, float] = dataclasses.field(default_factory=dict)
  quality: dict[str, dict[str, float]] = dataclasses.field(
      default_factory=dict)
  curves: dict[str, Curves] = dataclasses.field(default_factory=dict,
                                                repr=False)
  samples: dict[str, tuple] = dataclasses.field(default_factory=dict,
                                                repr=False)
  moments: np.ndarray | None = dataclasses.field(default=None, repr=False)


def evaluate_image(path: str | os.PathLike, protocol: Protocol,
                   predictor=None, *, pool_rate: float = 1.0,
                   image_figures: bool = True) -> ImageResult:
  """Measures one HR file: bicubic when ``predictor`` is None, else the
  model's mean (and its uncertainty, if it predicts one: a ``pool_rate``
  share of its values kept for the folder's pooled figures, the image's
  own figures only with ``image_figures``)."""
  path = pathlib.Path(path)
  scale, conv = protocol.scale, metrics.get_convention(protocol.convention)
  hr = pixels.crop_to_scale(data_lib.load_image(path), scale)
  shave = conv.shave_for(scale)
  window = metrics.SSIM_WINDOWS[conv.ssim_window].size
  pixels.require_size(hr.shape, window + 2 * shave, path,
                      f'a {window} px SSIM window after a {shave} px shave')
  lr = pixels.make_lr(hr, scale)
  unc = ImageUncertainty({}, {}, {}, {})
  if predictor is None:
    sr = pixels.upscale_bicubic(lr, scale)
  else:
    mean, log_var = predictor(lr / 255.0, tile=protocol.tile)
    sr = pixels.mean_to_uint8(mean)
    if predictor.predicts_uncertainty:
      unc = image_uncertainty(mean, log_var, hr, shave, protocol,
                              pool_rate=pool_rate,
                              seed=zlib.crc32(path.name.encode()),
                              image_figures=image_figures)
  grey = metrics.is_greyscale_file(path)
  psnr, ssim = metrics.measure(sr, hr, scale=scale,
                               convention=protocol.convention, grey=grey)
  return ImageResult(path.name, psnr, ssim, grey, unc.summary, unc.quality,
                     unc.curves, unc.samples, unc.moments)
