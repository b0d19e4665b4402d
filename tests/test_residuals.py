"""gramjax.metrics.residuals: one validation, float64 once, each sort cached
and equal to the sort made by hand."""

import numpy as np
import pytest

from gramjax.metrics import calibration
from gramjax.metrics import uncertainty as unc
from gramjax.metrics.residuals import Residuals


def sample(n=1_000, seed=0):
  rng = np.random.default_rng(seed)
  sigma = np.exp(rng.uniform(-1, 3, n))
  return sigma * rng.standard_normal(n), sigma


def test_validates_broadcasts_and_flattens():
  res = Residuals.of(np.ones((2, 3, 3)), np.full((2, 3, 1), 2.0))
  assert res.err.shape == res.sigma.shape == (18,)
  assert res.err.dtype == res.sigma.dtype == np.float64
  with pytest.raises(ValueError, match='sigma must be > 0'):
    Residuals.of([1.0, 2.0], [1.0, 0.0])
  with pytest.raises(ValueError, match='err has non-finite'):
    Residuals.of([1.0, np.nan], [1.0, 1.0])
  with pytest.raises(ValueError, match='do not broadcast'):
    Residuals.of(np.ones(3), np.ones(2))
  with pytest.raises(ValueError, match='empty'):
    Residuals.of([], [])
  with pytest.raises(TypeError):
    Residuals.of([1.0])


def test_a_ranking_score_may_be_negative_but_not_a_scale():
  score = Residuals.of([1.0, 2.0], [-1.0, 3.0], positive=False)
  assert unc.sparsification_curves(score).ause >= 0
  with pytest.raises(ValueError, match='sigma must be > 0'):
    unc.gaussian_nll(score)
  assert Residuals.of(Residuals.of([1.0], [2.0])).positive


def test_sorts_are_cached_and_right():
  err, sigma = sample()
  res = Residuals.of(err, sigma)
  assert res.sorted_ratio is res.sorted_ratio           # Made once.
  np.testing.assert_array_equal(res.sorted_ratio,
                                np.sort(np.abs(err) / sigma))
  order = res.sigma_order
  assert np.all(np.diff(sigma[order]) <= 0)
  np.testing.assert_array_equal(res.squared_descending,
                                np.sort(err**2)[::-1])
  assert Residuals.of(res) is res                        # No copy.


def test_pool_casts_float32_samples_once():
  err, sigma = sample(seed=1)
  parts = [(err[:400].astype(np.float32), sigma[:400].astype(np.float32)),
           (err[400:].astype(np.float32), sigma[400:].astype(np.float32))]
  res = Residuals.pool(parts)
  assert res.n == 1_000 and res.err.dtype == np.float64
  np.testing.assert_array_equal(res.err, err.astype(np.float32))


def test_every_metric_takes_a_residuals_or_its_arrays():
  err, sigma = sample(seed=2)
  res = Residuals.of(err, sigma)
  assert unc.gaussian_nll(res) == unc.gaussian_nll(err, sigma)
  assert unc.ause(res) == unc.ause(err, sigma)
  assert unc.auce(res) == unc.auce(err, sigma)
  assert unc.coverage(res) == unc.coverage(err, sigma)
  assert calibration.mace(res) == calibration.mace(err, sigma)
  assert calibration.uce(res) == calibration.uce(err, sigma)
  assert calibration.interval_score(res) == calibration.interval_score(
      err, sigma)
  assert calibration.sharpness(res) == calibration.sharpness(sigma)


def test_scaled_multiplies_sigma_only():
  err, sigma = sample(seed=3)
  res = Residuals.of(err, sigma)
  twice = res.scaled(2.0)
  assert twice.err is res.err
  np.testing.assert_array_equal(twice.sigma, 2.0 * sigma)
  np.testing.assert_array_equal(twice.sorted_ratio,
                                np.sort(np.abs(err) / (2.0 * sigma)))
