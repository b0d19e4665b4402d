"""Quality metrics for predicted per-pixel uncertainty (numpy and scipy).

The model predicts per pixel a mean ``mu`` and a log-variance ``s = log
sigma^2``; these metrics judge sigma against the error ``err = y - mu``:
``gaussian_nll`` (likelihood), ``sparsification_curves`` / ``ause`` (does
sigma *rank* the errors? Ilg et al., ECCV 2018), ``coverage`` and
``calibration_curve`` / ``auce`` (are its *values* right? Gustafsson et
al., CVPRW 2020); ``gramjax.metrics.summary.summarize`` gives all of them
(and the calibration literature's, ``gramjax.metrics.calibration``) as one
dict of floats.

Conventions shared by every function:

* ``err`` and ``sigma`` broadcast to one shape (a scalar sigma is a
  constant one) and all elements are pooled; average per-image results
  yourself for per-image means. A ``gramjax.metrics.residuals.Residuals``
  may stand for both (``f(residuals)``): validated once, its sorts shared
  by every figure computed from it.
* They share units; the project passes grey levels ([0, 255]: [0, 1]
  values times 255, variances times 255**2). Only ``gaussian_nll`` and the
  ``rmse`` / sigma statistics of ``summarize`` depend on the units.
* Inputs must be finite and non-empty, and sigma > 0 where it is a *scale*
  (NLL, coverage, calibration); else ``ValueError``. Sparsification and
  Spearman use only the *order* of sigma, so any finite score works there
  (sigma, sigma^2 or log sigma^2 agree up to float rounding).
* Float64 and O(n log n): one sort per ordering, then cumulative sums /
  ``searchsorted``. On a 2-core CPU, 4 million pixels take about 1.5 s for
  the sparsification curves.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import integrate
from scipy import special

from gramjax.metrics.residuals import Residuals


# Default central-interval levels of ``coverage`` / ``summarize``.
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
# Default removal fractions of the sparsification curves: 0, 0.01, ..., 0.99.
DEFAULT_FRACTIONS = np.linspace(0.0, 0.99, 100)
# Default alphas (1 - interval level) of the calibration curve / AUCE.
DEFAULT_ALPHAS = np.linspace(0.01, 0.99, 99)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
  """Trapezoid rule of float64 y over x (0 for a single point):
  ``scipy.integrate.trapezoid``, the same float64 operations as
  ``sum(diff(x) * (y[1:] + y[:-1]) / 2)``."""
  return float(integrate.trapezoid(y, x))


def central_z(level):
  """Half-width in sigmas of the central normal interval of probability
  ``level``: ``z = Phi^{-1}((1 + level) / 2)`` (``scipy.special.ndtri``),
  so P(|Z| <= z) = level; z(0.9) = 1.6449, z(0.95) = 1.9600.

  Args:
    level: scalar or array, 0 < level < 1 (else ``ValueError``).

  Returns:
    A float for a scalar level, else a float64 array of its shape.
  """
  level = np.asarray(level, np.float64)
  if not np.all((level > 0) & (level < 1)):
    raise ValueError(f'interval levels must be in (0, 1), got {level!r}')
  z = special.ndtri((1.0 + level) / 2.0)
  return float(z) if np.ndim(z) == 0 else z


def gaussian_nll(err, sigma=None) -> float:
  """Mean Gaussian negative log-likelihood, in nats per pixel.

  ``NLL = 0.5 log(2 pi sigma^2) + err^2 / (2 sigma^2)``, the density of
  each target under the predicted N(mu, sigma^2), averaged over all
  elements. Lower is better: it rewards a sigma both small and honest.
  Scaling err and sigma by k adds ln k, so the project's [0, 255]-unit value
  is the [0, 1]-unit one + ln 255 (5.5413). For a calibrated model
  (err ~ N(0, sigma^2)) its expectation is E[0.5 log(2 pi sigma^2)] + 0.5.

  Args:
    err: target minus predicted mean, y - mu (array-like).
    sigma: predicted standard deviation, > 0, same units, broadcastable.
  """
  res = Residuals.of(err, sigma)
  r = res.err / res.sigma
  return float(_HALF_LOG_2PI + np.mean(np.log(res.sigma))
               + 0.5 * np.mean(r * r))


@dataclasses.dataclass(frozen=True, eq=False)
class Sparsification:
  """Sparsification curves; see ``sparsification_curves``.

  Attributes:
    fractions: (m,) the fractions of pixels removed, as given, float64.
    model: (m,) RMSE of the pixels kept after removing those of highest
      sigma, over the RMSE of all pixels.
    oracle: (m,) the same removing the highest |err| first (the best case).
    random: (m,) the expected curve of a random removal order: exactly 1.
    ause: area(model) - area(oracle); 0 is perfect ranking.
    aurg: area(random) - area(model); > 0 is better than chance (Poggi et
      al., CVPR 2020).
    ause_random: area(random) - area(oracle), the AUSE of a constant sigma.
    rmse: RMSE of all pixels, the normaliser (units of err).
  """
  fractions: np.ndarray
  model: np.ndarray
  oracle: np.ndarray
  random: np.ndarray
  ause: float
  aurg: float
  ause_random: float
  rmse: float


def _kept_sums(sq_desc: np.ndarray, score_desc: np.ndarray,
               ks: np.ndarray) -> tuple[np.ndarray, float]:
  """Sum of ``sq`` over the pixels kept after removing the ``k`` of highest
  score, for each k in ``ks``, and the sum over all pixels.

  Both (n,) arrays are sorted by decreasing score. The kept sum is the
  suffix sum S(k); removing j of a tie group at sorted positions [a, b) at
  random removes on average j times the group mean, so the expected kept
  sum interpolates S linearly between a and b. Suffix sums accumulate from
  the end: no subtraction, no cancellation when the kept sum is small.
  """
  n = sq_desc.size
  suffix = np.zeros(n + 1)
  suffix[:n] = np.cumsum(sq_desc[::-1])[::-1]
  change = np.flatnonzero(score_desc[1:] != score_desc[:-1]) + 1
  bounds = np.concatenate(([0], change, [n]))
  return np.interp(ks, bounds, suffix[bounds]), float(suffix[0])


def sparsification_curves(err, sigma=None,
                          fractions: Sequence[float] | np.ndarray | None = None
                          ) -> Sparsification:
  """Sparsification curves and AUSE (RMSE-based; Ilg et al., ECCV 2018), and
  AURG (area under the random gain; Poggi et al., CVPR 2020).

  Remove the fraction f of pixels with the highest sigma and measure the
  RMSE of the rest; the *oracle* removes the highest |err| instead. Both
  curves are divided by the RMSE of all pixels (so they start at 1); AUSE
  is the area between them, over the given fractions (trapezoids; the
  default axis has width 0.99). Definitions:

  * f removes ``k = floor(f n)`` of the n pixels (``f n`` rounded to 6
    decimals against float noise: 0.29 * 100 gives 29), keeping at least 1.
  * Ties in sigma are resolved by their *expectation* over a random order
    within each tie group: deterministic and independent of the pixels'
    storage order; distinct sigmas give the plain sorted removal.
  * The random curve is the analytic expectation of a random removal
    order, exactly 1, so a constant sigma gets AURG = 0.
  * If every error is 0, curves and areas are NaN.

  Args:
    err: target minus predicted mean (any units).
    sigma: the uncertainty score (only its order matters), broadcastable.
    fractions: nondecreasing fractions in [0, 1); default 0, 0.01, .., 0.99.

  Returns:
    A ``Sparsification``.
  """
  res = Residuals.of(err, sigma, positive=False)
  fr = np.asarray(DEFAULT_FRACTIONS if fractions is None else fractions,
                  np.float64).ravel()
  if fr.size == 0 or not np.all((fr >= 0) & (fr < 1)):
    raise ValueError(f'fractions must be a non-empty list in [0, 1), got {fr}')
  if np.any(np.diff(fr) < 0):
    raise ValueError('fractions must be nondecreasing')
  n = res.n
  ks = np.minimum(np.floor(np.round(fr * n, 6)), n - 1).astype(np.int64)
  kept = (n - ks).astype(np.float64)
  # Stable descending sort of sigma; ties are averaged, so the storage order
  # only affects the float summation order.
  order = res.sigma_order
  model_sum, total_model = _kept_sums(res.squared[order], res.sigma[order],
                                      ks)
  sq_desc = res.squared_descending  # Oracle: decreasing |err|.
  oracle_sum, total_oracle = _kept_sums(sq_desc, sq_desc, ks)
  with np.errstate(divide='ignore', invalid='ignore'):
    # Each curve over its own value at k = 0, so it is exactly 1 there.
    model = np.sqrt(model_sum / kept / (total_model / n))
    oracle = np.sqrt(oracle_sum / kept / (total_oracle / n))
  rmse = float(np.sqrt(np.mean(res.squared)))
  random = np.full_like(fr, np.nan if rmse == 0 else 1.0)
  area_model = _trapezoid(model, fr)
  area_oracle = _trapezoid(oracle, fr)
  area_random = _trapezoid(random, fr)
  return Sparsification(
      fractions=fr, model=model, oracle=oracle, random=random,
      ause=area_model - area_oracle, aurg=area_random - area_model,
      ause_random=area_random - area_oracle, rmse=rmse)


def ause(err, sigma=None, fractions=None) -> float:
  """Area under the sparsification error: unit-free, >= 0, 0 when sigma
  orders pixels as |err| does; see ``sparsification_curves``."""
  return sparsification_curves(err, sigma, fractions).ause


def coverage_sorted(sorted_ratio: np.ndarray, z) -> np.ndarray:
  """Fraction of |err| / sigma <= z (interval bounds included), from the
  sorted ratios (``Residuals.sorted_ratio``)."""
  return (np.searchsorted(sorted_ratio, z, side='right')
          / float(sorted_ratio.size))


def coverages_sorted(sorted_ratio: np.ndarray,
                     levels: Sequence[float]) -> dict[float, float]:
  levels = [float(p) for p in levels]
  cov = coverage_sorted(sorted_ratio, central_z(np.asarray(levels)))
  return dict(zip(levels, cov.tolist()))


def coverage(err, sigma=None, levels: Sequence[float] = DEFAULT_LEVELS
             ) -> dict[float, float]:
  """Observed coverage of central predictive intervals.

  For each level p the fraction of pixels with ``|err| <= z(p) sigma``
  (``central_z``; bounds included), i.e. whose target lies in the central
  p-interval of N(mu, sigma^2). Calibrated: p; less is over-confident
  (sigma too small), more under-confident. Unit-free.

  Returns:
    ``{level: fraction in [0, 1]}`` with the levels as given (floats).
  """
  return coverages_sorted(Residuals.of(err, sigma).sorted_ratio, levels)


@dataclasses.dataclass(frozen=True, eq=False)
class CalibrationCurve:
  """Calibration (reliability) curve; see ``calibration_curve``.

  Attributes:
    alphas: (m,) the alphas as given (1 - interval level), float64.
    expected: (m,) 1 - alphas, the nominal coverage of each interval.
    observed: (m,) the observed coverage of each interval.
    auce: trapezoid of |observed - expected| over alphas.
  """
  alphas: np.ndarray
  expected: np.ndarray
  observed: np.ndarray
  auce: float


def calibration_curve(err, sigma=None,
                      alphas: Sequence[float] | np.ndarray | None = None
                      ) -> CalibrationCurve:
  """Calibration curve and AUCE (Gustafsson et al., CVPRW 2020).

  For each alpha the observed coverage c of the central interval of level
  1 - alpha, ``|err| <= Phi^{-1}(1 - alpha / 2) sigma`` (bounds included);
  AUCE is the trapezoid of |c - (1 - alpha)| over the alphas. Unit-free; 0
  is perfect, the worst (c = 0 or 1 everywhere) 0.49 on the default alphas.
  ``observed`` against ``expected`` is a reliability diagram
  (``gramjax.reporting.figures.reliability_diagram``).

  Args:
    err: target minus predicted mean.
    sigma: predicted standard deviation, > 0, same units, broadcastable.
    alphas: nondecreasing values in (0, 1); default 0.01, 0.02, ..., 0.99.
  """
  return calibration_from_sorted(Residuals.of(err, sigma).sorted_ratio,
                                 alphas)


def calibration_from_sorted(sorted_ratio: np.ndarray,
                            alphas=None) -> CalibrationCurve:
  a = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas,
                 np.float64).ravel()
  if a.size == 0 or not np.all((a > 0) & (a < 1)):
    raise ValueError(f'alphas must be a non-empty list in (0, 1), got {a}')
  if np.any(np.diff(a) < 0):
    raise ValueError('alphas must be nondecreasing')
  observed = coverage_sorted(sorted_ratio, special.ndtri(1.0 - a / 2.0))
  expected = 1.0 - a
  return CalibrationCurve(alphas=a, expected=expected, observed=observed,
                          auce=_trapezoid(np.abs(observed - expected), a))


def auce(err, sigma=None, alphas=None) -> float:
  """Area under the calibration error; 0 is perfect, at most 0.49 on the
  default alphas. See ``calibration_curve``."""
  return calibration_curve(err, sigma, alphas).auce


def interval_figures(sorted_ratio: np.ndarray,
                     levels: Sequence[float] = DEFAULT_LEVELS,
                     alphas=None) -> dict[str, float]:
  """``auce`` and ``coverage_<100 p>`` from the sorted
  |err| / sigma alone (what every central-interval figure depends on)."""
  out = {'auce': calibration_from_sorted(sorted_ratio, alphas).auce}
  for p, c in coverages_sorted(sorted_ratio, levels).items():
    out[f'coverage_{100.0 * p:g}'] = c
  return out


__all__ = [
    'DEFAULT_ALPHAS', 'DEFAULT_FRACTIONS', 'DEFAULT_LEVELS', 'CalibrationCurve',
    'Sparsification', 'auce', 'ause', 'calibration_curve', 'central_z',
    'coverage', 'gaussian_nll', 'interval_figures', 'sparsification_curves',
]
