"""gramjax.metrics.summary: every uncertainty figure of one channel space
in one dict, each equal to its own function's value."""

import math

import numpy as np
import pytest

from gramjax.metrics import calibration
from gramjax.metrics import ranking
from gramjax.metrics import summary
from gramjax.metrics import uncertainty as unc
from gramjax.metrics.residuals import Residuals
from tests.test_uncertainty import calibrated_sample


def test_summarize_keys_and_values():
  err, sigma = calibrated_sample(20_000, seed=11)
  s = summary.summarize(err, sigma)
  assert list(s) == ['nll', 'rmse', 'mean_sigma', 'rms_sigma', 'ause', 'aurg',
                     'ause_random', 'auce', 'coverage_50', 'coverage_80',
                     'coverage_90', 'coverage_95', 'spearman', 'mace',
                     'rmsce', 'miscal_area', 'sharpness', 'interval_score',
                     'uce']
  assert all(type(v) is float for v in s.values())
  sp = unc.sparsification_curves(err, sigma)
  assert s['nll'] == unc.gaussian_nll(err, sigma)
  assert s['rmse'] == pytest.approx(math.sqrt(np.mean(err**2)), rel=1e-14)
  assert s['mean_sigma'] == pytest.approx(np.mean(sigma), rel=1e-14)
  assert s['rms_sigma'] == pytest.approx(math.sqrt(np.mean(sigma**2)),
                                         rel=1e-14)
  assert (s['ause'], s['aurg'], s['ause_random']) == (sp.ause, sp.aurg,
                                                      sp.ause_random)
  assert s['auce'] == unc.auce(err, sigma)
  cov = unc.coverage(err, sigma)
  assert [s[f'coverage_{k}'] for k in (50, 80, 90, 95)] == list(cov.values())
  assert s['spearman'] == ranking.spearman(sigma, np.abs(err))
  # The field's figures, each by its own function.
  assert s['mace'] == calibration.mace(err, sigma)
  assert s['rmsce'] == calibration.rmsce(err, sigma)
  assert s['miscal_area'] == calibration.miscal_area(err, sigma)
  assert s['sharpness'] == calibration.sharpness(sigma) == s['rms_sigma']
  assert s['interval_score'] == calibration.interval_score(err, sigma)
  assert s['uce'] == calibration.uce(err, sigma)
  s = summary.summarize(err, sigma, levels=(0.995, 0.683))
  assert 'coverage_99.5' in s and 'coverage_68.3' in s
  assert 'coverage_95' not in s



def test_summarize_on_images_and_constant_sigma():
  err, sigma = calibrated_sample(4 * 5 * 3, seed=12)
  flat = summary.summarize(err, sigma)
  img = summary.summarize(err.reshape(4, 5, 3), sigma.reshape(4, 5, 3))
  assert img == flat
  s = summary.summarize(err, 2.0)
  assert math.isnan(s['spearman'])
  assert s['aurg'] == pytest.approx(0.0, abs=1e-14)


def test_ranking_of_reuses_exactly_the_ranking_figures():
  """A sigma of the same order: the ranking figures may be taken from the
  raw ones; the others are recomputed from the given sigma."""
  err, sigma = calibrated_sample(5_000, seed=13)
  raw = summary.summarize(err, sigma)
  marked = {k: (i + 1) * 1000.0 for i, k in enumerate(summary.RANKING_KEYS)}
  got = summary.summarize(err, 2 * sigma, ranking_of=marked)
  full = summary.summarize(err, 2 * sigma)
  for key in full:
    want = marked[key] if key in summary.RANKING_KEYS else full[key]
    assert got[key] == want, key
  assert got['mean_sigma'] == pytest.approx(2 * raw['mean_sigma'])


def test_a_residuals_and_its_arrays_give_the_same_figures():
  err, sigma = calibrated_sample(3_000, seed=14)
  res = Residuals.of(err, sigma)
  assert summary.summarize(res) == summary.summarize(err, sigma)
