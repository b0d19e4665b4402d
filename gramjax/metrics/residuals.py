"""The one type every uncertainty figure starts from: the errors and sigmas
of one channel space, validated once, each sort made at most once.

``err = y - mu`` and ``sigma`` share units (grey levels, [0, 255], in this
project); both are float64 (n,) after validation: broadcast together,
flattened, finite, and sigma > 0 where it is used as a scale. A folder's
pixels pooled from float32 samples are cast to float64 once
(``Residuals.pool``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable

import numpy as np


def flat_pair(err, sigma, *, positive: bool,
              names: tuple[str, str] = ('err', 'sigma')
              ) -> tuple[np.ndarray, np.ndarray]:
  """Broadcasts, flattens to float64 (n,) and validates ``err``, ``sigma``;
  ``ValueError`` naming the bad one."""
  n_err, n_sigma = names
  err = np.asarray(err, dtype=np.float64)
  sigma = np.asarray(sigma, dtype=np.float64)
  try:
    err, sigma = np.broadcast_arrays(err, sigma)
  except ValueError as e:
    raise ValueError(f'{n_err} of shape {err.shape} and {n_sigma} of shape '
                     f'{sigma.shape} do not broadcast') from e
  err, sigma = err.ravel(), sigma.ravel()
  if err.size == 0:
    raise ValueError(f'{n_err} and {n_sigma} are empty')
  for name, x in ((n_err, err), (n_sigma, sigma)):
    if not np.all(np.isfinite(x)):
      raise ValueError(f'{name} has non-finite values')
  if positive:
    _check_positive(sigma, n_sigma)
  return err, sigma


def _check_positive(sigma: np.ndarray, name: str = 'sigma') -> None:
  if not np.all(sigma > 0):
    raise ValueError(f'{name} must be > 0 everywhere (min {sigma.min()!r})')


@dataclasses.dataclass(frozen=True, eq=False)
class Residuals:
  """Validated ``err`` and ``sigma``, float64 (n,), with their sorts cached.

  Build it with ``Residuals.of(err, sigma)`` (or ``pool``); every metric of
  ``gramjax.metrics`` takes either one or the two arrays. ``positive``:
  sigma was checked > 0 (False for a ranking score such as log sigma^2).
  """
  err: np.ndarray
  sigma: np.ndarray
  positive: bool = True

  @classmethod
  def of(cls, err, sigma=None, *, positive: bool = True) -> 'Residuals':
    """``err`` and ``sigma`` validated, or ``err`` itself when it already
    is a ``Residuals`` (checked for sigma > 0 if ``positive``)."""
    if isinstance(err, Residuals):
      if sigma is not None:
        raise TypeError('give a Residuals alone, or err and sigma arrays')
      if positive and not err.positive:
        _check_positive(err.sigma)
        return cls(err.err, err.sigma, True)
      return err
    if sigma is None:
      raise TypeError('sigma is missing')
    return cls(*flat_pair(err, sigma, positive=positive), positive)

  @classmethod
  def pool(cls, parts: Iterable[tuple[np.ndarray, np.ndarray]]
           ) -> 'Residuals':
    """The (err, sigma) samples of many images, concatenated and cast to
    float64 once, then validated."""
    parts = list(parts)
    err = np.concatenate([p[0] for p in parts]).astype(np.float64)
    sigma = np.concatenate([p[1] for p in parts]).astype(np.float64)
    return cls.of(err, sigma)

  def scaled(self, factor: float) -> 'Residuals':
    """The same errors with sigma times ``factor`` (> 0)."""
    return Residuals(self.err, factor * self.sigma, self.positive)

  @property
  def n(self) -> int:
    return self.err.size

  @functools.cached_property
  def squared(self) -> np.ndarray:
    """err^2, (n,)."""
    return self.err * self.err

  @functools.cached_property
  def sorted_ratio(self) -> np.ndarray:
    """|err| / sigma in increasing order, (n,): every central-interval
    figure (coverage, calibration curve) depends on this alone."""
    return np.sort(np.abs(self.err) / self.sigma)

  @functools.cached_property
  def sigma_order(self) -> np.ndarray:
    """Indices by decreasing sigma (stable), (n,)."""
    return np.argsort(-self.sigma, kind='stable')

  @functools.cached_property
  def squared_descending(self) -> np.ndarray:
    """err^2 in decreasing order, (n,): the oracle's removal order."""
    return np.sort(self.squared)[::-1]
