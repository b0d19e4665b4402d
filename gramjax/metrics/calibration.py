"""The regression-calibration literature's metrics for per-pixel Gaussians
(numpy and scipy), beside ``gramjax.metrics.uncertainty``'s.

Inputs as in ``gramjax.metrics.uncertainty``: ``err = y - mu`` and ``sigma > 0``
broadcast to one shape, all elements pooled, the same units (grey levels
here), or one ``gramjax.metrics.residuals.Residuals`` for both. The definitions are uncertainty-toolbox's (Chung et al. 2021,
``uncertainty_toolbox.metrics_calibration`` with its defaults: central
intervals, 100 expected proportions 0, 1/99, ..., 1) unless said otherwise:

* ``mace``: mean absolute calibration error, mean over the proportions p of
  |observed - p|, observed = share of |err| <= z(p) sigma, z(p) =
  Phi^-1(1/2 + p/2); 0 is calibrated, unit-free.
* ``rmsce``: the root mean square of the same differences.
* ``miscal_area``: the area between the observed-vs-expected curve and the
  diagonal (piecewise linear, crossings handled), unit-free.
* ``sharpness``: sqrt(mean(sigma^2)), units of err; smaller is sharper.
* ``interval_score``: the negatively oriented interval score (Gneiting and
  Raftery 2007) of the central p-interval, ``(u - l) + 2/(1-p) *
  (distance of y outside [l, u])``, averaged over pixels and over p = 0.01,
  ..., 0.99; units of err, lower is better.
* ``uce``: uncertainty calibration error (Laves et al. 2020; reported by
  BayesCap, Upadhyay et al. ECCV 2022): the predicted variances split into
  equal-width bins between their min and max, ``sum_b n_b/n |mean(err^2) -
  mean(sigma^2)|`` over the bins; variance units (grey levels^2). Unlike
  Laves et al.'s code the smallest variance falls in the first bin.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from gramjax.metrics.residuals import Residuals
from gramjax.metrics.uncertainty import coverage_sorted

NUM_PROPORTIONS = 100           # uncertainty-toolbox's num_bins.
INTERVAL_LEVELS = np.linspace(0.01, 0.99, 99)   # Its interval_score's ps.
UCE_BINS = 15                   # Laves et al.'s default.


def proportions(err, sigma=None, num: int = NUM_PROPORTIONS
                ) -> tuple[np.ndarray, np.ndarray]:
  """(expected, observed), each (num,): expected = linspace(0, 1, num), the
  levels of the central intervals; observed = the share of pixels with
  |err| <= z(p) sigma (bounds included; z(1) = inf)."""
  return proportions_sorted(Residuals.of(err, sigma).sorted_ratio, num)


def proportions_sorted(ratio: np.ndarray, num: int = NUM_PROPORTIONS
                       ) -> tuple[np.ndarray, np.ndarray]:
  """``proportions`` from the sorted |err| / sigma alone."""
  expected = np.linspace(0.0, 1.0, num)
  return expected, coverage_sorted(ratio, special.ndtri(0.5 + expected / 2))


def curve_errors(ratio: np.ndarray) -> dict[str, float]:
  """mace, rmsce and miscal_area from the sorted |err| / sigma alone."""
  expected, observed = proportions_sorted(ratio)
  diff = observed - expected
  return {'mace': float(np.mean(np.abs(diff))),
          'rmsce': float(np.sqrt(np.mean(diff * diff))),
          'miscal_area': area_between(expected, diff)}


def mace(err, sigma=None, num: int = NUM_PROPORTIONS) -> float:
  """Mean absolute calibration error (module doc)."""
  expected, observed = proportions(err, sigma, num)
  return float(np.mean(np.abs(observed - expected)))


def rmsce(err, sigma=None, num: int = NUM_PROPORTIONS) -> float:
  """Root mean squared calibration error (module doc)."""
  expected, observed = proportions(err, sigma, num)
  return float(np.sqrt(np.mean((observed - expected) ** 2)))


def area_between(x: np.ndarray, d: np.ndarray) -> float:
  """Area between a piecewise-linear curve and the x axis, d = its heights
  at x: each segment's |trapezoid|, or two triangles where d changes sign."""
  dx, dl, dr = np.diff(x), d[:-1], d[1:]
  cross = dl * dr < 0
  trapezoid = np.abs(0.5 * dx * (dl + dr))
  with np.errstate(divide='ignore', invalid='ignore'):
    triangles = 0.5 * dx * (dl * dl + dr * dr) / (np.abs(dl) + np.abs(dr))
  return float(np.sum(np.where(cross, triangles, trapezoid)))


def miscal_area(err, sigma=None, num: int = NUM_PROPORTIONS) -> float:
  """Miscalibration area (module doc)."""
  expected, observed = proportions(err, sigma, num)
  return area_between(expected, observed - expected)


def sharpness(sigma) -> float:
  """sqrt(mean(sigma^2)), units of sigma (an array, or a ``Residuals``'s)."""
  res = (sigma if isinstance(sigma, Residuals)
         else Residuals.of(0.0, sigma))
  sigma = Residuals.of(res).sigma
  return float(np.sqrt(np.mean(sigma * sigma)))


def interval_score(err, sigma=None, levels=INTERVAL_LEVELS, bounds=None) -> float:
  """Mean interval score of the central intervals (module doc).

  ``bounds``: (lower, upper), each (len(levels),), the interval of level p
  as [mu + lower sigma, mu + upper sigma]; default the Gaussian's -z(p),
  z(p) (a recalibrated model passes its own). One sort: with pixels
  ordered by t = err / sigma, those below the interval have t < lower, and
  their summed distance sum(lower sigma - err) comes from prefix sums of
  sigma and err (likewise above)."""
  res = Residuals.of(err, sigma)
  err, sigma = res.err, res.sigma
  levels = np.asarray(levels, np.float64)
  if bounds is None:
    z = special.ndtri(0.5 + levels / 2.0)
    bounds = (-z, z)
  lower, upper = (np.asarray(b, np.float64) for b in bounds)
  order = np.argsort(err / sigma)          # Ties: equal t, same sums.
  t = (err / sigma)[order]
  cum_sigma = np.concatenate([[0.0], np.cumsum(sigma[order])])
  cum_err = np.concatenate([[0.0], np.cumsum(err[order])])
  below = np.searchsorted(t, lower, side='left')       # t < lower before.
  above = np.searchsorted(t, upper, side='right')      # t > upper from.
  excess = (lower * cum_sigma[below] - cum_err[below]
            + (cum_err[-1] - cum_err[above])
            - upper * (cum_sigma[-1] - cum_sigma[above]))
  scores = ((upper - lower) * np.mean(sigma)
            + 2.0 / (1.0 - levels) * excess / err.size)
  return float(np.mean(scores))


def uce(err, sigma=None, bins: int = UCE_BINS) -> float:
  """Uncertainty calibration error (module doc), grey levels^2."""
  res = Residuals.of(err, sigma)
  var, sq = res.sigma * res.sigma, res.squared
  lo, hi = var.min(), var.max()
  if hi == lo:
    return float(abs(sq.mean() - var.mean()))
  index = np.minimum(((var - lo) / (hi - lo) * bins).astype(np.int64),
                     bins - 1)
  gap = np.abs(np.bincount(index, sq, bins) - np.bincount(index, var, bins))
  return float(np.sum(gap) / res.n)
