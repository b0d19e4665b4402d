"""The field's calibration metrics (gramjax.metrics.calibration): against
uncertainty-toolbox where its definitions match, and against closed forms
on synthetic Gaussian data: calibrated, over- and under-confident,
uncorrelated and perfectly ranked sigma."""

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats

from gramjax.metrics import calibration as cal
from gramjax.metrics import summary

N = 400_000


def gaussian(seed, n=N):
  """Errors with heteroscedastic true sigmas (n,), and those sigmas."""
  rng = np.random.default_rng(seed)
  true_sigma = rng.uniform(1.0, 10.0, n)
  return rng.standard_normal(n) * true_sigma, true_sigma


def expected_observed(k, num=cal.NUM_PROPORTIONS):
  """Closed form: predicted sigma = true sigma / k, so |err| <= z sigma
  has probability 2 Phi(z / k) - 1."""
  p = np.linspace(0.0, 1.0, num)
  z = special.ndtri(0.5 + p / 2.0)
  return p, 2.0 * special.ndtr(z / k) - 1.0


@pytest.mark.parametrize('k', [1.0, 2.0, 0.5],
                         ids=['calibrated', 'over-confident',
                              'under-confident'])
def test_calibration_errors_match_closed_forms(k):
  err, true_sigma = gaussian(1)
  sigma = true_sigma / k
  p, want = expected_observed(k)
  got = summary.summarize(err, sigma)
  assert got['mace'] == pytest.approx(np.mean(np.abs(want - p)), abs=3e-3)
  assert got['rmsce'] == pytest.approx(
      math.sqrt(np.mean((want - p) ** 2)), abs=3e-3)
  # No crossing here: the exact area is the trapezoid of |want - p|.
  assert got['miscal_area'] == pytest.approx(
      cal.area_between(p, want - p), abs=3e-3)
  if k == 1.0:
    assert got['mace'] < 3e-3 and got['miscal_area'] < 3e-3
  else:
    assert got['mace'] > 0.1
  assert got['sharpness'] == pytest.approx(
      math.sqrt(np.mean(sigma ** 2)), rel=1e-12)


def test_area_between_handles_a_crossing():
  x = np.array([0.0, 1.0, 2.0])
  # d goes 1 -> -1 on [0, 1] (two triangles of 1/4) then stays -1.
  assert cal.area_between(x, np.array([1.0, -1.0, -1.0])) == pytest.approx(
      0.25 + 0.25 + 1.0)
  assert cal.area_between(x, np.array([0.0, 0.0, 0.0])) == 0.0


def test_interval_score_closed_form_for_a_calibrated_constant_sigma():
  """E[score_p] = 2 z s + 2/(1-p) E[(|e| - z s)+] with
  E[(|e| - z s)+] = 2 s (phi(z) - z (1 - Phi(z))) for e ~ N(0, s^2)."""
  s = 3.0
  err = np.random.default_rng(2).standard_normal(N) * s
  ps = np.array([0.5, 0.9])
  z = special.ndtri(0.5 + ps / 2.0)
  tail = 2.0 * s * (stats.norm.pdf(z) - z * (1.0 - special.ndtr(z)))
  want = np.mean(2.0 * z * s + 2.0 / (1.0 - ps) * tail)
  assert cal.interval_score(err, s, levels=ps) == pytest.approx(want,
                                                                rel=5e-3)
  # A wider interval than needed scores worse; so does a narrower one.
  assert cal.interval_score(err, 2 * s) > cal.interval_score(err, s)
  assert cal.interval_score(err, s / 2) > cal.interval_score(err, s)


def test_uce_known_answers():
  err, true_sigma = gaussian(3)
  # Perfectly ranked sigma = |err|: each bin's MSE is its mean variance.
  assert cal.uce(err, np.abs(err) + 1e-12) == pytest.approx(0.0, abs=1e-6)
  # One constant sigma: one bin, |MSE - sigma^2|.
  assert cal.uce(err, 4.0) == pytest.approx(abs(np.mean(err ** 2) - 16.0))
  # Calibrated: every bin's MSE is close to its variance.
  calibrated = cal.uce(err, true_sigma)
  assert calibrated < 0.02 * np.mean(true_sigma ** 2)
  # Uncorrelated sigma (err of variance 1): each bin has MSE ~ 1, so the
  # UCE is about E|1 - sigma^2|.
  rng = np.random.default_rng(4)
  sigma = rng.uniform(0.5, 2.0, N)
  e = rng.standard_normal(N)
  want = np.mean(np.abs(1.0 - sigma ** 2))
  assert cal.uce(e, sigma, bins=50) == pytest.approx(want, rel=0.03)


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match='sigma must be > 0'):
    cal.mace(np.ones(3), np.array([1.0, 0.0, 1.0]))
  with pytest.raises(ValueError, match='non-finite'):
    cal.sharpness(np.array([1.0, np.nan]))


@pytest.mark.parametrize('k', [1.0, 1.7, 0.6])
def test_agrees_with_uncertainty_toolbox(k):
  uct = pytest.importorskip('uncertainty_toolbox',
                            reason='pip install uncertainty-toolbox')
  from uncertainty_toolbox import metrics_calibration as mc  # pylint: disable=g-import-not-at-top
  from uncertainty_toolbox import metrics_scoring_rule as ms  # pylint: disable=g-import-not-at-top
  del uct
  err, true_sigma = gaussian(5, n=20_000)
  sigma = true_sigma / k
  mu = np.random.default_rng(6).uniform(0, 255, err.size)
  y = mu + err
  got = summary.summarize(err, sigma)
  want = {
      'mace': mc.mean_absolute_calibration_error(mu, sigma, y,
                                                 vectorized=True),
      'rmsce': mc.root_mean_squared_calibration_error(mu, sigma, y,
                                                      vectorized=True),
      'miscal_area': mc.miscalibration_area(mu, sigma, y, vectorized=True),
      'sharpness': mc.sharpness(sigma),
      'interval_score': ms.interval_score(mu, sigma, y),
  }
  for key, value in want.items():
    assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
