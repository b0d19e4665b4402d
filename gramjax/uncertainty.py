"""Quality metrics for predicted per-pixel uncertainty (numpy only).

The model predicts for every pixel a mean ``mu`` and a log-variance
``s = log sigma^2``; these metrics judge ``sigma`` against the actual error
``err = y - mu`` of the prediction ``mu`` for the target ``y``:

* ``gaussian_nll``: mean Gaussian negative log-likelihood (nats per pixel).
* ``sparsification_curves`` / ``ause``: does sigma *rank* the errors? (Ilg
  et al., ECCV 2018.)
* ``coverage``, ``calibration_curve`` / ``auce``: are sigma's *values* right,
  i.e. do central intervals mu +- z sigma cover the stated fraction of
  targets? (Gustafsson et al., CVPRW 2020.)
* ``spearman``: rank correlation between sigma and |err|.
* ``summarize``: all of the above as one flat dict of floats.
* ``y_channel``: per-channel RGB mean and variance -> BT.601 luma (Y).

Conventions shared by every function:

* ``err`` and ``sigma`` are array-likes that broadcast to one shape (a scalar
  sigma is a constant one); every element is one pixel (or one pixel-channel)
  and all of them are pooled. Measure per image and average the results
  yourself if you want per-image means.
* ``err`` and ``sigma`` are in the *same* units; the project passes grey
  levels, i.e. [0, 255] units (multiply [0, 1]-unit values by 255, variances
  by 255**2). Only ``gaussian_nll`` (and the ``rmse`` / sigma statistics of
  ``summarize``) depends on the units; the other metrics are unit-free.
* Inputs must be finite and non-empty; where sigma is a *scale* (NLL,
  coverage, calibration) it must be > 0. Violations raise ``ValueError``.
  Sparsification and Spearman only use the *order* of sigma, so any finite
  uncertainty score works there (sigma, sigma^2 or s = log sigma^2 give the
  same result up to float rounding).
* Computation is in float64 and O(n log n): one sort per ordering, then
  cumulative sums / ``searchsorted``, never a re-sort per fraction or level.
  On a 2-core CPU, 4 million pixels take about 1.5 s for the sparsification
  curves and about 3 s for ``summarize`` (five sorts).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
from typing import Iterator, Sequence

import numpy as np

# Default central-interval levels of ``coverage`` / ``summarize``.
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
# Default removal fractions of the sparsification curves: 0, 0.01, ..., 0.99.
DEFAULT_FRACTIONS = np.linspace(0.0, 0.99, 100)
# Default alphas (1 - interval level) of the calibration curve / AUCE.
DEFAULT_ALPHAS = np.linspace(0.01, 0.99, 99)

# BT.601 luma of RGB in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B, so
# for RGB in [0, 255] the weights are these / 255 (same as gramjax.metrics).
_LUMA = np.array([65.481, 128.553, 24.966])
LUMA_WEIGHTS = _LUMA / 255.0

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------------
# Input handling and small numerical helpers.


def _flat_pair(err, sigma, *, positive: bool,
               names: tuple[str, str] = ('err', 'sigma')
               ) -> tuple[np.ndarray, np.ndarray]:
  """Broadcasts, flattens to float64 and validates ``err`` and ``sigma``."""
  n_err, n_sigma = names
  err = np.asarray(err, dtype=np.float64)
  sigma = np.asarray(sigma, dtype=np.float64)
  try:
    err, sigma = np.broadcast_arrays(err, sigma)
  except ValueError as e:
    raise ValueError(f'{n_err} of shape {err.shape} and {n_sigma} of shape '
                     f'{sigma.shape} do not broadcast') from e
  err = err.ravel()
  sigma = sigma.ravel()
  if err.size == 0:
    raise ValueError(f'{n_err} and {n_sigma} are empty')
  if not np.all(np.isfinite(err)):
    raise ValueError(f'{n_err} has non-finite values')
  if not np.all(np.isfinite(sigma)):
    raise ValueError(f'{n_sigma} has non-finite values')
  if positive and not np.all(sigma > 0):
    raise ValueError(f'{n_sigma} must be > 0 everywhere '
                     f'(min {sigma.min()!r})')
  return err, sigma


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
  """Trapezoid rule of y over x (0 for a single point)."""
  y = np.asarray(y, np.float64)
  x = np.asarray(x, np.float64)
  return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


def _level_key(level: float) -> str:
  """'coverage_95' for 0.95, 'coverage_99.5' for 0.995."""
  return f'coverage_{100.0 * float(level):g}'


# --------------------------------------------------------------------------
# Normal quantile without scipy.

# Acklam's rational approximation of the inverse normal CDF (relative error
# < 1.15e-9), refined below by one Halley step on math.erfc.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425


def _lower_quantile(p: float) -> float:
  """Phi^{-1}(p) for 0 < p <= 0.5 (so the result is <= 0)."""
  if p < _P_LOW:
    q = math.sqrt(-2.0 * math.log(p))
    x = ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q
          + _C[5]) /
         ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
  else:
    q = p - 0.5  # Exact (Sterbenz) for p in [0.25, 0.5].
    r = q * q
    x = ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r
          + _A[5]) * q /
         (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r
          + 1.0))
  # One Halley step: x -= u / (1 + x u / 2), u = (Phi(x) - p) / phi(x).
  # Phi(x) = erfc(-x / sqrt 2) / 2 is accurate to relative precision for
  # x <= 0, so the step is too (no cancellation near p = 0).
  e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
  u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
  return x - u / (1.0 + 0.5 * x * u)


def _normal_quantile_scalar(p: float) -> float:
  p = float(p)
  if not 0.0 < p < 1.0:
    raise ValueError(f'normal quantile needs 0 < p < 1, got {p!r}')
  if p > 0.5:
    # 1 - p is exact for p in [0.5, 1], so the upper tail keeps full
    # precision and the function is exactly antisymmetric.
    return -_lower_quantile(1.0 - p)
  return _lower_quantile(p)


def normal_quantile(p):
  """Inverse standard normal CDF ``Phi^{-1}(p)``, for 0 < p < 1.

  Acklam's rational approximation (relative error < 1.15e-9) refined by one
  Halley step on ``math.erfc``; agrees with an exact bisection to ~1e-15
  (tested to 1e-12 over p in [1e-12, 1 - 1e-12]). Computed on the lower
  tail and mirrored, so ``normal_quantile(1 - p) == -normal_quantile(p)``.
  A float in, a float out; an array in, a float64 array of its shape out.
  Raises ``ValueError`` for p outside (0, 1) (or NaN).
  """
  if np.ndim(p) == 0:
    return _normal_quantile_scalar(p)
  p = np.asarray(p, np.float64)
  return np.array([_normal_quantile_scalar(v) for v in p.ravel()],
                  np.float64).reshape(p.shape)


def central_z(level):
  """Half-width in sigmas of the central normal interval of probability
  ``level``: ``z = Phi^{-1}((1 + level) / 2)``, so P(|Z| <= z) = level
  (z(0.9) = 1.6449, z(0.95) = 1.9600). Scalar or array, 0 < level < 1."""
  level = np.asarray(level, np.float64)
  if not np.all((level > 0) & (level < 1)):
    raise ValueError(f'interval levels must be in (0, 1), got {level!r}')
  z = normal_quantile((1.0 + level) / 2.0)
  return float(z) if np.ndim(z) == 0 else z


def normal_cdf(x):
  """Standard normal CDF ``Phi(x) = erfc(-x / sqrt 2) / 2`` (math.erfc);
  scalar or array."""
  if np.ndim(x) == 0:
    return 0.5 * math.erfc(-float(x) / math.sqrt(2.0))
  x = np.asarray(x, np.float64)
  return np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x.ravel()],
                  np.float64).reshape(x.shape)


# --------------------------------------------------------------------------
# Negative log-likelihood.


def gaussian_nll(err, sigma) -> float:
  """Mean Gaussian negative log-likelihood, in nats per pixel.

  For every pixel the density of its target under the predicted
  N(mu, sigma^2), with ``err = y - mu``:

      NLL = 0.5 log(2 pi sigma^2) + err^2 / (2 sigma^2),

  averaged over all pixels (elements). Lower is better; it rewards a sigma
  that is both small and honest.

  Units: the value depends on the units of ``err`` and ``sigma`` (which
  must be the same): scaling both by k adds ln k, so
  ``NLL in [0, 255] units = NLL in [0, 1] units + ln 255`` (ln 255 =
  5.5413). The project reports it in grey levels ([0, 255] units). For a
  calibrated model (err ~ N(0, sigma^2)) its expectation is
  ``E[0.5 log(2 pi sigma^2)] + 0.5``.

  Args:
    err: target minus predicted mean, y - mu (array-like).
    sigma: predicted standard deviation, > 0, same units, broadcastable.
  """
  err, sigma = _flat_pair(err, sigma, positive=True)
  r = err / sigma
  return float(_HALF_LOG_2PI + np.mean(np.log(sigma)) + 0.5 * np.mean(r * r))


# --------------------------------------------------------------------------
# Sparsification (Ilg et al., ECCV 2018).


class _MappingDataclass(collections.abc.Mapping):
  """Lets a result dataclass also be read as ``result['field']`` (what
  ``gramjax.figures`` expects). Equality is identity: the fields hold
  arrays, for which Mapping's value comparison would be ambiguous."""

  __eq__ = object.__eq__
  __hash__ = object.__hash__

  def __getitem__(self, key: str):
    if key not in self._keys():
      raise KeyError(key)
    return getattr(self, key)

  def __iter__(self) -> Iterator[str]:
    return iter(self._keys())

  def __len__(self) -> int:
    return len(self._keys())

  def _keys(self) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True, eq=False)
class Sparsification(_MappingDataclass):
  """Sparsification curves; see ``sparsification_curves``.

  Attributes:
    fractions: the fractions of pixels removed, as given (float64).
    model: RMSE of the pixels kept after removing that fraction with the
      highest sigma, divided by the RMSE of all pixels (so 1 at fraction 0).
    oracle: the same, removing the pixels with the highest |err| first (the
      best any ordering can do; the lower envelope of all curves).
    random: the expected curve for a uniformly random removal order: exactly
      1 everywhere (see ``sparsification_curves``).
    ause: area between model and oracle over the fraction axis
      (trapezoid); 0 is perfect ranking, smaller is better.
    aurg: area under the random gain, area(random) - area(model); > 0 means
      sigma ranks errors better than chance, < 0 worse.
    ause_random: area between the random and the oracle curve, i.e. the
      AUSE an uninformative (constant) sigma gets on the same errors; the
      reference scale for ``ause`` (ause = ause_random - aurg).
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


def _removal_counts(fractions: np.ndarray, n: int) -> np.ndarray:
  """k = floor(f n) pixels removed, f n first rounded to 6 decimals so that
  float noise (0.29 * 100 = 28.999999999999996) gives the intended 29; at
  least one pixel is always kept."""
  k = np.floor(np.round(fractions * n, 6))
  return np.minimum(k, n - 1).astype(np.int64)


def _kept_sums(sq_desc: np.ndarray, score_desc: np.ndarray,
               ks: np.ndarray) -> tuple[np.ndarray, float]:
  """Sum of ``sq`` over the pixels kept after removing the ``k`` pixels of
  highest score, for each k in ``ks``, and the sum over all pixels (the
  value at k = 0, accumulated in the same order). Both arrays are already
  in order of decreasing score; ties in the score are resolved by their
  expectation over a uniformly random order within each tie group.

  The kept sum after k removals is the suffix sum S(k). Within a group of
  tied scores occupying sorted positions [a, b), removing j of them at
  random removes on average j times the group's mean, i.e. the expected
  kept sum is the linear interpolation of S between the group boundaries a
  and b (exactly S(k) at every k when there are no ties). Suffix sums are
  accumulated from the end: no subtraction, so no cancellation when the
  kept sum is small.
  """
  n = sq_desc.size
  suffix = np.zeros(n + 1)
  suffix[:n] = np.cumsum(sq_desc[::-1])[::-1]
  change = np.flatnonzero(score_desc[1:] != score_desc[:-1]) + 1
  bounds = np.concatenate(([0], change, [n]))
  return np.interp(ks, bounds, suffix[bounds]), float(suffix[0])


def sparsification_curves(err, sigma,
                          fractions: Sequence[float] | np.ndarray | None = None
                          ) -> Sparsification:
  """Sparsification curves, AUSE and AURG (RMSE-based).

  Following Ilg et al., "Uncertainty estimates and multi-hypotheses networks
  for optical flow" (ECCV 2018): remove the fraction f of pixels with the
  highest predicted uncertainty and measure the RMSE of the rest; plot it
  against f. The *oracle* removes the pixels with the highest true |err|
  instead. Both are normalised by their value at fraction 0 (the RMSE of all
  pixels), so they start at 1 and are unit-free; AUSE (area under the
  sparsification error) is the area between the model and the oracle curve.

  Definitions chosen here:

  * f removes ``k = floor(f n)`` of the n pixels (``f n`` rounded to 6
    decimals first, against float noise); at least one pixel is kept.
  * Ties in sigma (e.g. a clipped or quantised sigma) are resolved by their
    *expectation* over a random order within each tie group: the curve is
    sqrt(E[MSE of the kept pixels]) with the E over those orders. This is
    deterministic, independent of the pixels' storage order (a raster-order
    tie break would leak image layout into the metric), and gives exactly
    the random curve for a constant sigma. With distinct sigmas it is the
    plain sorted removal.
  * The random curve is the *analytic expectation* for a uniformly random
    removal order: every pixel is kept with equal probability, so E[MSE of
    the kept pixels] equals the MSE of all of them and the normalised curve
    is exactly 1 for every f (no sampling, no seed). A constant sigma gives
    this curve, hence AUSE = ``ause_random`` and AURG = 0.
  * Areas are trapezoids over the given fractions (the default axis
    0..0.99 has width 0.99, not 1).
  * If every error is 0 the normalisation is 0/0: curves and areas are NaN.

  Args:
    err: target minus predicted mean (any units).
    sigma: the uncertainty score; only its order matters (sigma, sigma^2 or
      log sigma^2 are equivalent), finite, broadcastable to err.
    fractions: nondecreasing removal fractions in [0, 1); default
      0, 0.01, ..., 0.99.

  Returns:
    ``Sparsification`` (also readable as a mapping) with ``fractions``,
    ``model``, ``oracle``, ``random``, ``ause``, ``aurg``, ``ause_random``
    and ``rmse``.
  """
  err, sigma = _flat_pair(err, sigma, positive=False)
  fr = np.asarray(DEFAULT_FRACTIONS if fractions is None else fractions,
                  np.float64).ravel()
  if fr.size == 0 or not np.all((fr >= 0) & (fr < 1)):
    raise ValueError(f'fractions must be a non-empty list in [0, 1), got {fr}')
  if np.any(np.diff(fr) < 0):
    raise ValueError('fractions must be nondecreasing')
  n = err.size
  ks = _removal_counts(fr, n)
  kept = (n - ks).astype(np.float64)
  sq = err * err
  # Model: stable descending sort of sigma (ties are then averaged, so
  # their storage order only affects float summation order).
  order = np.argsort(-sigma, kind='stable')
  model_sum, total_model = _kept_sums(sq[order], sigma[order], ks)
  # Oracle: by decreasing |err|, i.e. decreasing err^2, tied on equal err^2.
  sq_desc = np.sort(sq)[::-1]
  oracle_sum, total_oracle = _kept_sums(sq_desc, sq_desc, ks)
  with np.errstate(divide='ignore', invalid='ignore'):
    # Each curve divided by its own value at k = 0 (both are sum(sq) / n up
    # to summation order), so it is exactly 1 there.
    model = np.sqrt(model_sum / kept / (total_model / n))
    oracle = np.sqrt(oracle_sum / kept / (total_oracle / n))
  rmse = float(np.sqrt(np.mean(sq)))
  random = np.full_like(fr, np.nan if rmse == 0 else 1.0)
  area_model = _trapezoid(model, fr)
  area_oracle = _trapezoid(oracle, fr)
  area_random = _trapezoid(random, fr)
  return Sparsification(
      fractions=fr, model=model, oracle=oracle, random=random,
      ause=area_model - area_oracle, aurg=area_random - area_model,
      ause_random=area_random - area_oracle, rmse=rmse)


def ause(err, sigma, fractions=None) -> float:
  """Area under the sparsification error (Ilg et al., ECCV 2018): the area
  between the normalised RMSE sparsification curves of sigma and of the
  oracle; unit-free, >= 0, 0 when sigma orders pixels exactly as |err|
  does. See ``sparsification_curves`` for the definitions."""
  return sparsification_curves(err, sigma, fractions).ause


# --------------------------------------------------------------------------
# Calibration (Gustafsson et al., CVPRW 2020).


def _sorted_ratio(err: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  return np.sort(np.abs(err) / sigma)


def _coverage_sorted(sorted_ratio: np.ndarray, z) -> np.ndarray:
  """Fraction of |err| / sigma <= z (interval bounds included)."""
  return (np.searchsorted(sorted_ratio, z, side='right')
          / float(sorted_ratio.size))


def coverage(err, sigma, levels: Sequence[float] = DEFAULT_LEVELS
             ) -> dict[float, float]:
  """Observed coverage of central predictive intervals.

  For each ``level`` p the fraction of pixels whose target lies in the
  central p-interval of N(mu, sigma^2), i.e. ``|err| <= z(p) sigma`` with
  ``z(p) = Phi^{-1}((1 + p) / 2)`` (bounds included). A calibrated sigma
  gives p; less is over-confident (sigma too small), more under-confident.
  Unit-free (err and sigma in the same units).

  Returns:
    ``{level: fraction in [0, 1]}`` with the levels as given (floats).
  """
  err, sigma = _flat_pair(err, sigma, positive=True)
  levels = [float(p) for p in levels]
  cov = _coverage_sorted(_sorted_ratio(err, sigma),
                         np.asarray(central_z(np.asarray(levels))))
  return {p: float(c) for p, c in zip(levels, np.atleast_1d(cov))}


@dataclasses.dataclass(frozen=True, eq=False)
class CalibrationCurve(_MappingDataclass):
  """Calibration (reliability) curve; see ``calibration_curve``.

  Attributes:
    alphas: the alphas, as given (1 - interval level).
    expected: 1 - alphas, the nominal coverage of each interval.
    observed: the observed coverage of each interval.
    auce: area under the calibration error, the trapezoid of
      |observed - expected| over alphas.
  """
  alphas: np.ndarray
  expected: np.ndarray
  observed: np.ndarray
  auce: float


def calibration_curve(err, sigma,
                      alphas: Sequence[float] | np.ndarray | None = None
                      ) -> CalibrationCurve:
  """Calibration curve and AUCE (Gustafsson et al., "Evaluating scalable
  Bayesian deep learning methods for robust computer vision", CVPRW 2020).

  For each alpha the observed coverage c(alpha) of the interval
  ``mu +- z(1 - alpha / 2) sigma`` (the central interval of level
  1 - alpha, z = Phi^{-1}; bounds included), against its nominal coverage
  1 - alpha. AUCE = integral over alpha of |c(alpha) - (1 - alpha)|
  (trapezoid over the given alphas). Unit-free.

  AUCE is 0 for a perfectly calibrated sigma. Because coverage can only
  fall as alpha grows, its maximum is reached with c = 0 everywhere (sigma
  far too small) or c = 1 everywhere (far too large): 0.49 on the default
  alphas 0.01..0.99 (0.5 on the whole of [0, 1]). Plot ``observed``
  against ``expected`` for a reliability diagram
  (``gramjax.figures.reliability_diagram``).

  Args:
    err: target minus predicted mean.
    sigma: predicted standard deviation, > 0, same units, broadcastable.
    alphas: increasing values in (0, 1); default 0.01, 0.02, ..., 0.99.
  """
  err, sigma = _flat_pair(err, sigma, positive=True)
  return _calibration_from_sorted(_sorted_ratio(err, sigma), alphas)


def _calibration_from_sorted(sorted_ratio: np.ndarray,
                             alphas) -> CalibrationCurve:
  a = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas,
                 np.float64).ravel()
  if a.size == 0 or not np.all((a > 0) & (a < 1)):
    raise ValueError(f'alphas must be a non-empty list in (0, 1), got {a}')
  if np.any(np.diff(a) < 0):
    raise ValueError('alphas must be nondecreasing')
  z = normal_quantile(1.0 - a / 2.0)
  observed = _coverage_sorted(sorted_ratio, z)
  expected = 1.0 - a
  return CalibrationCurve(alphas=a, expected=expected, observed=observed,
                          auce=_trapezoid(np.abs(observed - expected), a))


def auce(err, sigma, alphas=None) -> float:
  """Area under the calibration error (Gustafsson et al., CVPRW 2020); 0
  is perfect, at most 0.49 on the default alphas. See
  ``calibration_curve``."""
  return calibration_curve(err, sigma, alphas).auce


# --------------------------------------------------------------------------
# Rank correlation.


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks of x, tied values getting the mean of their ranks."""
  n = x.size
  order = np.argsort(x)  # Tied values get one rank: stability is moot.
  xs = x[order]
  change = np.flatnonzero(xs[1:] != xs[:-1]) + 1
  starts = np.concatenate(([0], change))
  ends = np.concatenate((change, [n]))
  # Sorted positions start..end-1 hold ranks start+1..end; their mean:
  avg = (starts + ends + 1) * 0.5
  ranks = np.empty(n, np.float64)
  ranks[order] = np.repeat(avg, ends - starts)
  return ranks


def spearman(sigma, abs_err) -> float:
  """Spearman rank correlation between ``sigma`` and ``abs_err``.

  The Pearson correlation of the two rank vectors, tied values getting the
  average of the ranks they span (the usual "average" / fractional
  ranking; equal to scipy.stats.spearmanr). In [-1, 1]; 1 when sigma
  orders the pixels exactly as |err| does, ~0 for an uninformative sigma.
  Unit-free; any monotone transform of either input leaves it unchanged.

  Returns NaN (not 0) when either input is constant, or has fewer than two
  elements: the correlation is undefined there, and NaN keeps a broken
  sigma from averaging in as "uncorrelated".

  Args:
    sigma: uncertainty per pixel (any finite score).
    abs_err: |y - mu| per pixel, broadcastable to sigma.
  """
  a, b = _flat_pair(sigma, abs_err, positive=False,
                    names=('sigma', 'abs_err'))
  if a.size < 2:
    return float('nan')
  ra = _average_ranks(a)
  rb = _average_ranks(b)
  ra -= ra.mean()
  rb -= rb.mean()
  saa = float(ra @ ra)
  sbb = float(rb @ rb)
  if saa == 0.0 or sbb == 0.0:
    return float('nan')
  rho = float(ra @ rb) / math.sqrt(saa * sbb)
  return min(1.0, max(-1.0, rho))


# --------------------------------------------------------------------------
# Everything at once.


def summarize(err, sigma, levels: Sequence[float] = DEFAULT_LEVELS,
              fractions=None, alphas=None) -> dict[str, float]:
  """All uncertainty metrics as one flat dict of Python floats.

  ``err`` (target minus mean) and ``sigma`` (> 0) in the same units, the
  project's being grey levels ([0, 255]); all elements are pooled. Keys:

  * ``nll``: mean Gaussian NLL, nats per pixel, in the units of err
    (``gaussian_nll``).
  * ``rmse``: sqrt(mean(err^2)), units of err.
  * ``mean_sigma``: mean(sigma); ``rms_sigma``: sqrt(mean(sigma^2)), units
    of err (rms_sigma ~ rmse for a calibrated sigma).
  * ``ause``: area between the model and oracle sparsification curves.
  * ``aurg``: area(random curve) - area(model curve); > 0 is better than
    chance.
  * ``ause_random``: area between the random (= constant-sigma) and oracle
    curves, the AUSE of an uninformative sigma on the same errors
    (``ause = ause_random - aurg``). The three areas are unit-free and
    over ``fractions`` (``sparsification_curves``).
  * ``auce``: area under the calibration error over ``alphas``
    (``calibration_curve``).
  * ``coverage_<100 p>`` for each level p (``coverage_50``,
    ``coverage_80``, ``coverage_90``, ``coverage_95`` by default; 0.995
    would give ``coverage_99.5``): observed coverage of the central
    p-interval.
  * ``spearman``: Spearman correlation of sigma and |err| (NaN for a
    constant sigma).
  """
  err, sigma = _flat_pair(err, sigma, positive=True)
  sp = sparsification_curves(err, sigma, fractions)
  ratio = _sorted_ratio(err, sigma)
  cal = _calibration_from_sorted(ratio, alphas)
  levels = [float(p) for p in levels]
  out = {
      'nll': gaussian_nll(err, sigma),
      'rmse': sp.rmse,
      'mean_sigma': float(np.mean(sigma)),
      'rms_sigma': float(np.sqrt(np.mean(sigma * sigma))),
      'ause': sp.ause,
      'aurg': sp.aurg,
      'ause_random': sp.ause_random,
      'auce': cal.auce,
  }
  if levels:
    cov = np.atleast_1d(_coverage_sorted(
        ratio, np.asarray(central_z(np.asarray(levels)))))
    for p, c in zip(levels, cov):
      out[_level_key(p)] = float(c)
  out['spearman'] = spearman(sigma, np.abs(err))
  return out


# --------------------------------------------------------------------------
# RGB -> Y.


def y_channel(mu_rgb, var_rgb) -> tuple[np.ndarray, np.ndarray]:
  """Mean and variance of the BT.601 luma Y from per-channel RGB ones.

  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for RGB in
  [0, 255] (Y in [16, 235], as ``gramjax.metrics.rgb_to_y``), i.e. weights
  ``w = [65.481, 128.553, 24.966] / 255`` (``LUMA_WEIGHTS``). Then

      mu_Y = 16 + w . mu,    var_Y = sum_c w_c^2 var_c,

  the variance *assuming the three channels' errors are independent* (the
  model predicts no covariance). Fully correlated channel errors would give
  the larger sd_Y = sum_c w_c sd_c instead. The Y-channel error is
  ``rgb_to_y(target) - mu_Y = w . (target - mu)``; measure against float Y,
  not Y rounded to integer levels (rounding adds variance 1/12).

  Args:
    mu_rgb: predicted means, (..., 3), in [0, 255] units.
    var_rgb: predicted variances sigma^2, (..., 3), in [0, 255]^2 units
      (``255**2 * exp(s)`` for s = log sigma^2 in [0, 1] units).

  Returns:
    ``(mu_y, var_y)``, float64 arrays of shape (...); sigma_Y is
    ``sqrt(var_y)``, in grey levels.
  """
  mu = np.asarray(mu_rgb, np.float64)
  var = np.asarray(var_rgb, np.float64)
  if mu.shape[-1:] != (3,) or var.shape[-1:] != (3,):
    raise ValueError(f'expected (..., 3) RGB arrays, got {mu.shape} and '
                     f'{var.shape}')
  if np.any(var < 0):
    raise ValueError('variances must be >= 0')
  return 16.0 + mu @ LUMA_WEIGHTS, var @ (LUMA_WEIGHTS * LUMA_WEIGHTS)


__all__ = [
    'DEFAULT_ALPHAS', 'DEFAULT_FRACTIONS', 'DEFAULT_LEVELS', 'LUMA_WEIGHTS',
    'CalibrationCurve', 'Sparsification', 'auce', 'ause',
    'calibration_curve', 'central_z', 'coverage', 'gaussian_nll',
    'normal_cdf', 'normal_quantile', 'sparsification_curves', 'spearman',
    'summarize', 'y_channel',
]
