"""The one validation of an (error, sigma) pair every uncertainty figure
starts from: broadcast, flattened to float64 and finite (sigma > 0 where
asked)."""

from __future__ import annotations

import numpy as np


def flat_pair(err, sigma, *, positive: bool,
               names: tuple[str, str] = ('err', 'sigma')
               ) -> tuple[np.ndarray, np.ndarray]:
  """Broadcasts, flattens to float64 (n,) and validates ``err``, ``sigma``."""
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
  if positive and not np.all(sigma > 0):
    raise ValueError(f'{n_sigma} must be > 0 everywhere '
                     f'(min {sigma.min()!r})')
  return err, sigma
