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

Both are exact: ``R_n`` is a step function that jumps only at the pixels'
ratios ``|err| / sigma``, so ``lambda`` is searched over those sorted
values, never on a grid. With ``sigma = 1`` the same procedures give the
constant-width baseline (what sigma buys is the difference in width).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

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


def empirical_risk_steps(images: Sequence[ImageRatios]
                         ) -> tuple[np.ndarray, np.ndarray]:
  """``(lambdas, risks)``: every candidate lambda (0 and each distinct
  ratio, ascending) and ``R_n`` there (nonincreasing; 0 at the last)."""
  n = len(images)
  if n == 0:
    raise ValueError('no calibration images')
  ratios = np.concatenate([im.sorted for im in images])
  weights = np.concatenate([np.full(im.sorted.size, 1.0 / (n * im.sorted.size))
                            for im in images])
  order = np.argsort(ratios, kind='stable')
  ratios, weights = ratios[order], weights[order]
  lambdas, first = np.unique(ratios, return_index=True)
  # R_n(r_k) = the weight of the ratios strictly above r_k.
  above = np.concatenate([np.cumsum(weights[::-1])[::-1], [0.0]])
  last = np.append(first[1:], ratios.size)     # One past each run of ties.
  risks = above[last]
  return np.concatenate([[0.0], lambdas]), np.concatenate([[above[0]], risks])


def _first_at_most(lambdas, values, bound) -> float:
  """The smallest lambda whose nonincreasing ``values`` is <= ``bound``
  (inf where none is)."""
  ok = np.nonzero(values <= bound)[0]
  return float(lambdas[ok[0]]) if ok.size else math.inf


def crc_lambda(images: Sequence[ImageRatios], alpha: float = ALPHA) -> float:
  """Conformal risk control's lambda (inf when n < 1/alpha - 1)."""
  _check_level('alpha', alpha)
  lambdas, risks = empirical_risk_steps(images)
  n = len(images)
  return _first_at_most(lambdas, (n * risks + LOSS_BOUND) / (n + 1), alpha)


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
  lambdas, risks = empirical_risk_steps(images)
  p = hb_p_value(risks, len(images), alpha)
  # p is nondecreasing in the risk, so nonincreasing in lambda: the first
  # lambda below delta has every larger one below it too.
  return _first_at_most(lambdas, p, np.nextafter(delta, 0.0))


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
