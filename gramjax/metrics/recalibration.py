"""Recalibration of the predicted per-pixel Gaussians after training
(numpy and scipy), fitted on held-out images and applied to any other.

Two methods, each fitted per channel space (``'rgb'``: every channel of
every pixel, what the likelihood was trained on; ``'y'``: the luma under
the evaluation's assumed channel correlation) on pooled ``err = y - mu``
and ``sigma`` in grey levels:

* ``sigma_scaling`` (Laves et al., MIDL 2020): sigma -> s sigma with the
  one scalar that minimises the Gaussian NLL on the fitting set, in closed
  form s^2 = mean(err^2 / sigma^2). Still a Gaussian: every figure is the
  old one's with s sigma.
* ``isotonic`` (Kuleshov et al., ICML 2018): the predictive CDF
  F(y) = Phi(t), t = err / sigma, is composed with the isotonic regression R
  of the empirical frequency P(F <= p) on p over the fitting set. That
  frequency is already nondecreasing in p, so R is the empirical CDF of the
  fitting set's F values and R(Phi(t)) is the empirical CDF of its t: the
  recalibrated model is mu + sigma T, T drawn from the fitting set's
  standardised errors, stored as ``QUANTILE_KNOTS`` quantiles of t
  (piecewise linear between them). Its central intervals follow those
  quantiles; it gives probabilities, not a density, so its NLL is left
  undefined (NaN), and its sigma-valued figures (mean sigma, sharpness, UCE)
  use sigma times the root mean square of t.

Both keep the order of sigma, so AUSE, AURG and Spearman do not move: what
recalibration cannot fix is ranking.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
from typing import Any, Mapping

import numpy as np
from scipy import special

from gramjax.core import files
from gramjax.core.errors import UserError
from gramjax.metrics import calibration
from gramjax.metrics import conformal
from gramjax.metrics import summary
from gramjax.metrics import uncertainty
from gramjax.metrics.residuals import Residuals

METHODS = ('sigma_scaling', 'isotonic')
ALL_METHODS = METHODS + conformal.METHODS
QUANTILE_KNOTS = 1001
CHANNEL_SPACES = ('rgb', 'y')
FILE_NAME = 'calibration.json'     # In the workdir.
FORMAT = 2                         # 2: bound to the weights' digest.
MODEL_KEYS = ('step', 'weights', 'digest', 'scale', 'loss')
INTERVAL_DEFINITION = (
    'mean +- lambda * sigma per value, sigma = exp(log_var / 2) of the raw '
    "log-variance in the model's [-1, 1] units (lambda is unit-free); the "
    'risk is the share of an image\'s values outside')
CORRELATION_OF = ('Pearson correlation of the standardised errors e/sigma '
                  'of the three channels, pooled over the calibration '
                  "images' pixels (mean of the three pairs)")


@dataclasses.dataclass(frozen=True)
class ChannelFit:
  """What one method fitted on one channel space.

  ``scale``: sigma scaling's s; for isotonic the root mean square of the
  standardised errors t (the same number: its equivalent Gaussian scale).
  ``quantiles``: isotonic only, t at probabilities linspace(0, 1, K).
  """
  scale: float
  quantiles: tuple[float, ...] = ()


def fit(method: str, err, sigma=None) -> ChannelFit:
  """Fits ``method`` (``METHODS``) on pooled ``err`` and ``sigma`` (or one
  ``Residuals``)."""
  if method not in METHODS:
    raise ValueError(f'unknown recalibration method {method!r}; use one of '
                     f'{", ".join(METHODS)}')
  res = Residuals.of(err, sigma)
  t = res.err / res.sigma
  scale = float(math.sqrt(np.mean(t * t)))
  if method == 'sigma_scaling':
    return ChannelFit(scale)
  q = np.quantile(t, np.linspace(0.0, 1.0, QUANTILE_KNOTS))
  return ChannelFit(scale, tuple(float(x) for x in q))


def cdf(fitted: ChannelFit, t: np.ndarray) -> np.ndarray:
  """The recalibrated CDF at standardised errors ``t`` (probability that
  the target lies below mu + t sigma)."""
  if not fitted.quantiles:
    return special.ndtr(t / fitted.scale)
  q = np.asarray(fitted.quantiles)
  return np.interp(t, q, np.linspace(0.0, 1.0, q.size), left=0.0, right=1.0)


def quantile(fitted: ChannelFit, p) -> np.ndarray:
  """The recalibrated model's p-quantile of t (inverse of ``cdf``)."""
  p = np.asarray(p, np.float64)
  if not fitted.quantiles:
    return fitted.scale * special.ndtri(p)
  q = np.asarray(fitted.quantiles)
  return np.interp(p, np.linspace(0.0, 1.0, q.size), q)


def sorted_ratio_after(fitted: ChannelFit, res: Residuals) -> np.ndarray:
  """``Residuals.sorted_ratio`` of the recalibrated model: the sorted
  |Phi^-1(cdf)| (a pixel lies in the central p-interval iff it is <=
  z(p)); |t| / s for sigma scaling."""
  if not fitted.quantiles:
    return res.scaled(fitted.scale).sorted_ratio
  return np.sort(np.abs(special.ndtri(cdf(fitted, res.err / res.sigma))))


def calibration_curve_after(fitted: ChannelFit, err, sigma=None
                            ) -> uncertainty.CalibrationCurve:
  """The recalibrated model's reliability curve (as
  ``uncertainty.calibration_curve`` of the raw one)."""
  return uncertainty.calibration_from_sorted(
      sorted_ratio_after(fitted, Residuals.of(err, sigma)))


def figures(fitted: ChannelFit, err, sigma=None,
            before: Mapping | None = None) -> dict[str, float]:
  """``summary.summarize`` of the recalibrated model (module doc).

  ``before``: the raw model's figures of the same values, whose ranking
  figures are then reused instead of recomputed (recalibration keeps the
  order of sigma; the sorts and ranks behind them are most of the cost)."""
  res = Residuals.of(err, sigma)
  out = summary.summarize(res.scaled(fitted.scale), ranking_of=before)
  if not fitted.quantiles:
    return out
  ratio = sorted_ratio_after(fitted, res)
  out.update(uncertainty.interval_figures(ratio))
  out.update(calibration.curve_errors(ratio))
  levels = calibration.INTERVAL_LEVELS
  bounds = (quantile(fitted, 0.5 - levels / 2),
            quantile(fitted, 0.5 + levels / 2))
  out['interval_score'] = calibration.interval_score(res, levels=levels,
                                                     bounds=bounds)
  out['nll'] = math.nan
  return out


@dataclasses.dataclass(frozen=True)
class Interval:
  """A conformal calibration (``gramjax.metrics.conformal``): the interval
  ``mean +- lam[c] * sigma`` per channel space, with ``alpha`` (and, for
  rcps, ``delta``) fitted on ``n`` images; ``constant_grey``: the
  half-width in grey levels that the same method gives a constant sigma
  (what sigma buys is the difference)."""
  alpha: float
  delta: float | None
  n: int
  lam: Mapping[str, float]
  constant_grey: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Recalibration:
  """A fitted recalibration of one model (``WORKDIR/calibration.json``).

  ``model``: ``Predictor.model_key()`` of the weights it was fitted on
  (step, weights, their digest, scale, loss); it applies to those alone.
  ``fitted_on``: the folder (or held-out set); ``images``: (name, content
  digest) of each of its images. ``y_correlation``: the channel
  correlation of the standardised errors, measured on those images, that
  Y's variance uses with this fit. ``values``: a ``ChannelFit`` per
  channel space (sigma_scaling, isotonic); ``interval``: the conformal
  fit (crc, rcps).
  """
  method: str
  fitted_on: str
  images: tuple[tuple[str, str], ...]
  model: Mapping[str, Any]
  y_correlation: float
  values: Mapping[str, ChannelFit] = dataclasses.field(default_factory=dict)
  interval: Interval | None = None

  @property
  def step(self) -> int:
    return int(self.model['step'])

  def describe(self) -> str:
    if self.interval is not None:
      level = f'{1 - self.interval.alpha:.0%}'.replace('%', ' %')
      what = (f'{level} interval, {self.method.upper()} on '
              f'{len(self.images)} images of {self.fitted_on}')
      lams = ', '.join(f'{c} lambda = {v:.3f}' for c, v in
                       self.interval.lam.items())
      return f'{what} (step {self.step}; {lams})'
    scales = ', '.join(f'{c} s = {f.scale:.3f}' for c, f in
                       self.values.items())
    return (f'{self.method} fitted on {self.fitted_on} ({len(self.images)} '
            f'images, step {self.step}; {scales})')

  def to_json(self) -> dict:
    out = {'format': FORMAT, 'method': self.method,
           'fitted_on': self.fitted_on,
           'images': [{'name': n, 'sha256': d} for n, d in self.images],
           'model': dict(self.model), 'y_correlation': self.y_correlation,
           'y_correlation_of': CORRELATION_OF}
    if self.values:
      out['values'] = {c: dataclasses.asdict(f)
                       for c, f in self.values.items()}
    if self.interval is not None:
      i = self.interval
      out['interval'] = {'definition': INTERVAL_DEFINITION,
                         'alpha': i.alpha, 'delta': i.delta, 'n': i.n,
                         'lambda': dict(i.lam),
                         'constant_width_grey': dict(i.constant_grey)}
    return out

  @classmethod
  def from_json(cls, d: Mapping) -> 'Recalibration':
    """Raises ``KeyError``/``TypeError``/``ValueError`` on a bad dict."""
    if d.get('format') != FORMAT:
      raise ValueError('written by an older gramjax (no record of the '
                       'weights it was fitted on)')
    if d['method'] not in ALL_METHODS:
      raise ValueError(f'unknown method {d["method"]!r}')
    model = {k: d['model'][k] for k in MODEL_KEYS}
    values = {c: ChannelFit(float(v['scale']),
                            tuple(float(x) for x in v.get('quantiles', ())))
              for c, v in d.get('values', {}).items()}
    interval = None
    if d['method'] in conformal.METHODS:
      i = d['interval']
      interval = Interval(float(i['alpha']), None if i['delta'] is None
                          else float(i['delta']), int(i['n']),
                          {c: float(v) for c, v in i['lambda'].items()},
                          {c: float(v) for c, v in
                           i['constant_width_grey'].items()})
      if set(interval.lam) != set(CHANNEL_SPACES):
        raise ValueError(f'lambda for {sorted(interval.lam)}')
    elif set(values) != set(CHANNEL_SPACES):
      raise ValueError(f'values for {sorted(values)}, expected '
                       f'{list(CHANNEL_SPACES)}')
    for f in values.values():
      if not (f.scale > 0 and math.isfinite(f.scale)):
        raise ValueError(f'scale {f.scale!r} is not a positive number')
      if f.quantiles and (len(f.quantiles) < 2 or
                          np.any(np.diff(f.quantiles) < 0)):
        raise ValueError('quantiles are not nondecreasing')
    images = tuple((str(im['name']), str(im['sha256'])) for im in d['images'])
    return cls(d['method'], str(d['fitted_on']), images, model,
               float(d['y_correlation']), values, interval)


def fit_channels(method: str, pooled: Mapping[str, Residuals], *,
                 fitted_on: str, images, model: Mapping[str, Any],
                 y_correlation: float) -> Recalibration:
  """Fits ``method`` (sigma_scaling, isotonic) on each channel space's
  pooled ``Residuals``."""
  return Recalibration(method, fitted_on, tuple(images), dict(model),
                       float(y_correlation),
                       {c: fit(method, pooled[c]) for c in CHANNEL_SPACES})


def path_in(workdir: str | os.PathLike) -> pathlib.Path:
  return pathlib.Path(os.path.expanduser(str(workdir))) / FILE_NAME


def save(workdir: str | os.PathLike, recal: Recalibration,
         key: str = 'recalibration') -> pathlib.Path:
  """Writes ``WORKDIR/calibration.json`` atomically (replacing one there);
  a failure is a ``UserError`` naming ``key``."""
  path = path_in(workdir)
  files.write_json(path, recal.to_json(), key)
  return path


def load(workdir: str | os.PathLike) -> Recalibration | None:
  """The workdir's stored recalibration, or None; a damaged file is a
  ``UserError`` naming it."""
  path = path_in(workdir)
  if not path.exists():
    return None
  try:
    return Recalibration.from_json(json.loads(path.read_text()))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise StaleCalibration(f'{path}: not a calibration this version can '
                           f'apply ({type(e).__name__}: {e}).') from e


class StaleCalibration(UserError):
  """A stored calibration that does not belong to the model at hand (or
  cannot be read); the commands add how to fit it again."""


def for_model(workdir: str | os.PathLike, model: Mapping[str, Any],
              use: bool = True) -> Recalibration | None:
  """The stored calibration if ``use``; refused (``StaleCalibration``)
  unless it was fitted on exactly these weights at this scale
  (``model``: ``Predictor.model_key()``)."""
  recal = load(workdir) if use else None
  if recal is None:
    return None
  mine = recal.model
  if mine['digest'] != model['digest'] or mine['scale'] != model['scale']:
    raise StaleCalibration(
        f'{path_in(workdir)} was fitted on other weights (step '
        f'{mine["step"]}, {mine["weights"]} weights {mine["digest"][:12]}, '
        f'x{mine["scale"]}) than these (step {model["step"]}, '
        f'{model["weights"]} weights {model["digest"][:12]}, '
        f'x{model["scale"]}): it cannot be applied to them.')
  logging.info('calibration: %s', recal.describe())
  return recal
