"""Distribution-free intervals ``mu +- lambda * sigma`` with a finite-sample
guarantee on an image-level risk (numpy and scipy).

The loss of one image at ``lambda`` is the fraction of its values outside
the interval, ``L_i(lambda) = mean(|err| > lambda * sigma)``, nonincreasing
in ``lambda``; ``R_n`` is its mean over the n calibration images. The
images must be exchangeable with the ones the guarantee is claimed for
(pixels within an image may correlate: the loss is per image).

* ``crc``, conformal risk control (Angelopoulos et al., ICLR 2024):
  ``lambda = inf{lambda : (n R_n(lambda) + B) / (n + 1) <= alpha}`` with the
  loss bound B = 1, so that ``E[L_test(lambda)] <= alpha``; exists when
  n >= 1/alpha - 1.
* ``rcps``, risk-controlling prediction sets (Bates et al., JACM 2021;
  Angelopoulos et al., ICML 2022): the smallest ``lambda`` whose
  Hoeffding-Bentkus p-value for "risk > alpha" is below ``delta`` (and
  stays below for every larger ``lambda``), so that
  ``P(E[L_test | calibration] <= alpha) >= 1 - delta``.

Both are exact: ``R_n`` is a step function that jumps only at the values'
ratios ``|err| / sigma``, so ``lambda`` is one of them (found by bisection
to adjacent floats, then the next ratio), never a point of a grid. With
``sigma = 1`` the same procedures give the constant-width baseline (what
sigma buys is the difference in width).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats

METHODS = ('crc', 'rcps')
ALPHA = 0.1
DELTA = 0.1
LOSS_BOUND = 1.0          # B: a miscoverage fraction is at most 1.


@dataclasses.dataclass(frozen=True)
class ImageRatios:
  """The sorted ratios ``|err| / sigma`` of one image's values, float64
  (m,): the image's loss at ``lambda`` is the share above it."""
  sorted: np.ndarray

  @classmethod
  def of(cls, err, sigma=1.0) -> 'ImageRatios':
    err = np.abs(np.asarray(err, np.float64)).ravel()
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), err.shape)
    if err.size == 0:
      raise ValueError('an image with no values')
    if not (np.all(np.isfinite(err)) and np.all(sigma > 0)):
      raise ValueError('err must be finite and sigma > 0')
    return cls(np.sort(err / sigma.ravel()))

  def loss(self, lam: float) -> float:
    """The share of values outside ``mu +- lam * sigma`` (ratio > lam)."""
    inside = np.searchsorted(self.sorted, lam, side='right')
    return 1.0 - inside / self.sorted.size


def empirical_risk(images: Sequence[ImageRatios], lam: float) -> float:
  """``R_n(lam)``: the mean over the images of the share outside."""
  return float(np.mean([im.loss(lam) for im in images]))


def smallest_lambda(images: Sequence[ImageRatios],
                    ok: Callable[[float], bool]) -> float:
  """The smallest lambda whose empirical risk passes ``ok`` (a test that
  holds for every risk below one that passes), exactly: bisection down to
  adjacent floats, then the first ratio above the failing end, where
  ``R_n`` jumps. inf where even the widest interval (risk 0) fails."""
  if not images:
    raise ValueError('no calibration images')
  top = max(float(im.sorted[-1]) for im in images)
  if not ok(0.0):
    return math.inf
  if ok(empirical_risk(images, 0.0)):
    return 0.0
  lo, hi = 0.0, top            # ok fails at lo and holds at hi.
  for _ in range(4096):
    mid = 0.5 * (lo + hi)
    if not lo < mid < hi:
      break
    if ok(empirical_risk(images, mid)):
      hi = mid
    else:
      lo = mid
  above = [im.sorted[np.searchsorted(im.sorted, lo, side='right')]
           for im in images if im.sorted[-1] > lo]
  return float(min(above))


def crc_lambda(images: Sequence[ImageRatios], alpha: float = ALPHA) -> float:
  """Conformal risk control's lambda (inf when n < 1/alpha - 1)."""
  _check_level('alpha', alpha)
  n = len(images)
  return smallest_lambda(
      images, lambda risk: (n * risk + LOSS_BOUND) / (n + 1) <= alpha)


def hb_p_value(risk, n: int, alpha: float) -> np.ndarray:
  """The Hoeffding-Bentkus p-value of "the risk exceeds ``alpha``" for an
  empirical ``risk`` of n losses in [0, 1] (Bates et al., JACM 2021,
  Proposition 3): min(exp(-n h(min(risk, alpha), alpha)),
  e P(Binomial(n, alpha) <= ceil(n risk)))."""
  risk = np.asarray(risk, np.float64)
  r = np.minimum(risk, alpha)
  with np.errstate(divide='ignore', invalid='ignore'):
    h = (np.where(r > 0, r * np.log(r / alpha), 0.0)
         + np.where(r < 1, (1 - r) * np.log((1 - r) / (1 - alpha)), 0.0))
  hoeffding = np.exp(-n * h)
  # ceil with a tolerance: n * risk is an integer sum of fractions.
  k = np.ceil(n * risk - 1e-9)
  bentkus = math.e * stats.binom.cdf(k, n, alpha)
  return np.minimum(hoeffding, bentkus)


def rcps_lambda(images: Sequence[ImageRatios], alpha: float = ALPHA,
                delta: float = DELTA) -> float:
  """The RCPS lambda with the Hoeffding-Bentkus bound (inf where even
  the widest interval cannot be certified)."""
  _check_level('alpha', alpha)
  _check_level('delta', delta)
  n = len(images)
  # p is nondecreasing in the risk, so nonincreasing in lambda.
  return smallest_lambda(
      images, lambda risk: float(hb_p_value(risk, n, alpha)) < delta)


def fit(method: str, images: Sequence[ImageRatios], alpha: float = ALPHA,
        delta: float = DELTA) -> float:
  if method == 'crc':
    return crc_lambda(images, alpha)
  if method == 'rcps':
    return rcps_lambda(images, alpha, delta)
  raise ValueError(f'unknown conformal method {method!r}; use one of '
                   f'{", ".join(METHODS)}')


def min_images(alpha: float) -> int:
  """The fewest calibration images for which CRC's lambda is finite."""
  return max(1, math.ceil(1.0 / alpha - 1.0 - 1e-12))


def _check_level(name: str, value: float) -> None:
  if not 0.0 < value < 1.0:
    raise ValueError(f'{name}={value!r} must be in (0, 1)')
