"""Every uncertainty figure of one channel space as one dict of floats: the
sparsification, coverage and calibration figures of
``gramjax.metrics.uncertainty``, the regression-calibration literature's of
``gramjax.metrics.calibration`` and the Spearman ranking, all computed from
one ``Residuals`` (each sort made once)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from gramjax.metrics import calibration
from gramjax.metrics import ranking
from gramjax.metrics import uncertainty
from gramjax.metrics.residuals import Residuals

# The figures that only the order of sigma (or the error alone) decides: a
# recalibration that keeps that order does not move them.
RANKING_KEYS = ('rmse', 'ause', 'aurg', 'ause_random', 'spearman')


def _ranking(res: Residuals, fractions) -> dict[str, float]:
  sp = uncertainty.sparsification_curves(res, fractions=fractions)
  return {'rmse': sp.rmse, 'ause': sp.ause, 'aurg': sp.aurg,
          'ause_random': sp.ause_random,
          'spearman': ranking.spearman(res.sigma, np.abs(res.err))}


def summarize(err, sigma=None, *,
              levels: Sequence[float] = uncertainty.DEFAULT_LEVELS,
              fractions=None, alphas=None,
              ranking_of: Mapping[str, float] | None = None
              ) -> dict[str, float]:
  """All uncertainty figures of ``err`` and ``sigma`` (> 0; or one
  ``Residuals``), pooled over every element, as Python floats.

  Keys, in order: ``nll`` (nats); ``rmse``, ``mean_sigma``, ``rms_sigma``
  (units of err); ``ause``, ``aurg``, ``ause_random`` (over ``fractions``);
  ``auce`` (over ``alphas``); ``coverage_<100 p>`` per level p
  (``coverage_95``); ``spearman`` of sigma and |err| (NaN for a constant
  sigma); ``mace``, ``rmsce``, ``miscal_area``, ``sharpness``,
  ``interval_score`` (units of err) and ``uce`` (units of err^2).
  ``ranking_of``: figures of the same errors under a sigma of the same
  order, whose ``RANKING_KEYS`` are taken instead of recomputed.
  """
  res = Residuals.of(err, sigma)
  rank = (_ranking(res, fractions) if ranking_of is None
          else {k: ranking_of[k] for k in RANKING_KEYS})
  ratio = res.sorted_ratio
  rms_sigma = calibration.sharpness(res)
  return {
      'nll': uncertainty.gaussian_nll(res),
      'rmse': rank['rmse'],
      'mean_sigma': float(np.mean(res.sigma)),
      'rms_sigma': rms_sigma,
      'ause': rank['ause'],
      'aurg': rank['aurg'],
      'ause_random': rank['ause_random'],
      **uncertainty.interval_figures(ratio, levels, alphas),
      'spearman': rank['spearman'],
      **calibration.curve_errors(ratio),
      'sharpness': rms_sigma,
      'interval_score': calibration.interval_score(res),
      'uce': calibration.uce(res),
  }
