"""How well sigma ranks the errors: Spearman's rank correlation of sigma
and |error| (ties by average ranks)."""

from __future__ import annotations

import math

from scipy import stats

from gramjax.metrics.residuals import flat_pair


def spearman(sigma, abs_err) -> float:
  """Spearman rank correlation between ``sigma`` and ``abs_err``.

  The Pearson correlation of the average ranks (``scipy.stats.rankdata``;
  the value of ``scipy.stats.spearmanr``), in [-1, 1]: 1 when sigma orders
  the pixels as |err| does, ~0 for an uninformative sigma. Unit-free and
  unchanged by monotone transforms of either input.

  Returns NaN (not 0), without a warning, when either input is constant or
  has fewer than two elements: the correlation is undefined, and NaN keeps
  a broken sigma from averaging in as "uncorrelated".

  Args:
    sigma: uncertainty per pixel (any finite score).
    abs_err: |y - mu| per pixel, broadcastable to sigma.
  """
  a, b = flat_pair(sigma, abs_err, positive=False,
                    names=('sigma', 'abs_err'))
  if a.size < 2:
    return float('nan')
  ra, rb = stats.rankdata(a), stats.rankdata(b)
  ra -= ra.mean()
  rb -= rb.mean()
  saa, sbb = float(ra @ ra), float(rb @ rb)
  if saa == 0.0 or sbb == 0.0:
    return float('nan')
  return min(1.0, max(-1.0, float(ra @ rb) / math.sqrt(saa * sbb)))
