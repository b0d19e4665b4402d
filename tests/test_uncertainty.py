"""Uncertainty metrics against hand-computed values, brute-force references
and the known answers of synthetic models (calibrated, oracle, constant,
mis-scaled sigma); scipy.stats.norm is the independent normal reference."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from gramjax.metrics import quality as metrics
from gramjax.metrics import luma
from gramjax.metrics import ranking
from gramjax.metrics import uncertainty as unc

# Known quantiles: z(level) = Phi^{-1}((1 + level) / 2) for central intervals.
KNOWN_Z = {0.95: 1.959963984540054, 0.5: 0.6744897501960817,
           0.9: 1.6448536269514722, 0.8: 1.2815515655446004}


def calibrated_sample(n=200_000, seed=0):
  """sigma log-uniform in [0.5, 20] (grey levels), err ~ N(0, sigma^2)."""
  rng = np.random.default_rng(seed)
  sigma = np.exp(rng.uniform(math.log(0.5), math.log(20.0), n))
  return sigma * rng.standard_normal(n), sigma


def trapezoid(y, dx):
  y = np.asarray(y, float)
  return float(dx * (y.sum() - 0.5 * (y[0] + y[-1])))


# --------------------------------------------------------------------------
# Central interval half-widths.


@pytest.mark.parametrize('level,z', sorted(KNOWN_Z.items()))
def test_central_z_known_values(level, z):
  assert unc.central_z(level) == pytest.approx(z, abs=1e-12)


def test_central_z_interval_holds_its_level():
  # P(|Z| <= z) = 1 - 2 Phi(-z), with scipy.stats.norm as the reference.
  levels = np.concatenate([np.logspace(-12, -1, 12),
                           np.linspace(0.01, 0.99, 99),
                           1 - np.logspace(-6, -1, 6)])
  z = unc.central_z(levels)
  assert z.shape == levels.shape
  np.testing.assert_allclose(1 - 2 * stats.norm.cdf(-z), levels, rtol=0,
                             atol=1e-15)
  # Upper tails to relative precision: 2 Phi(-z) = 1 - level.
  up = levels >= 0.5
  np.testing.assert_allclose(2 * stats.norm.cdf(-z[up]), 1 - levels[up],
                             rtol=1e-9)
  assert np.all(np.diff(z[np.argsort(levels)]) >= 0)
  assert isinstance(unc.central_z(0.3), float)
  assert unc.central_z(np.full((2, 3), 0.3)).shape == (2, 3)


@pytest.mark.parametrize('level', [0.0, 1.0, -0.1, 1.5, float('nan')])
def test_central_z_rejects_outside_open_unit_interval(level):
  with pytest.raises(ValueError):
    unc.central_z(level)


def test_coverage_of_a_uniform_error_grid_is_closed_form():
  # |err| / sigma uniform on a fine grid of [0, 4]: coverage(level) is the
  # grid fraction at or below z(level), i.e. z / 4 to within one step.
  n = 400_001
  err = np.linspace(-4.0, 4.0, n)
  for level, c in unc.coverage(err, 1.0, levels=sorted(KNOWN_Z)).items():
    assert c == pytest.approx(KNOWN_Z[level] / 4, abs=2 / n), level
  # Doubling sigma doubles the interval: coverage 2 z / 4.
  for level, c in unc.coverage(err, 2.0, levels=sorted(KNOWN_Z)).items():
    assert c == pytest.approx(KNOWN_Z[level] / 2, abs=2 / n), level


# --------------------------------------------------------------------------
# Gaussian NLL.


def test_gaussian_nll_hand_values():
  half_log_2pi = 0.5 * math.log(2 * math.pi)
  assert unc.gaussian_nll([0.0, 2.0], [1.0, 1.0]) == pytest.approx(
      half_log_2pi + 1.0, abs=1e-15)
  assert unc.gaussian_nll([1.0], [math.e]) == pytest.approx(
      half_log_2pi + 1.0 + 0.5 / math.e**2, abs=1e-15)
  # A scalar sigma broadcasts.
  assert unc.gaussian_nll([0.0, 2.0], 1.0) == unc.gaussian_nll([0.0, 2.0],
                                                               [1.0, 1.0])


def test_gaussian_nll_units_shift_by_log_255():
  err, sigma = calibrated_sample(1000, seed=1)
  err01, sigma01 = err / 255, sigma / 255
  assert unc.gaussian_nll(err, sigma) == pytest.approx(
      unc.gaussian_nll(err01, sigma01) + math.log(255), abs=1e-12)


@pytest.mark.parametrize('sigma', [0.0, -1.0, float('nan'), float('inf')])
def test_gaussian_nll_rejects_bad_sigma(sigma):
  with pytest.raises(ValueError):
    unc.gaussian_nll([1.0, 2.0], [1.0, sigma])


# --------------------------------------------------------------------------
# A calibrated model.


def test_calibrated_gaussian_sample():
  err, sigma = calibrated_sample()
  for level, c in unc.coverage(err, sigma).items():
    assert abs(c - level) < 0.005, (level, c)
  cal = unc.calibration_curve(err, sigma)
  assert cal.auce < 0.01
  np.testing.assert_allclose(cal.observed, cal.expected, atol=0.006)
  # E[NLL] = E[0.5 log(2 pi sigma^2)] + 0.5 and, sigma being log-uniform
  # on [0.5, 20], E[log sigma] = (log 0.5 + log 20) / 2 = 0.5 log 10.
  expected_nll = 0.5 * math.log(2 * math.pi) + 0.5 * math.log(10) + 0.5
  assert unc.gaussian_nll(err, sigma) == pytest.approx(expected_nll, abs=0.01)
  # log|err| = log sigma + log|z|: sd(log sigma) = log(40) / sqrt(12) = 1.06
  # against sd(log|z|) = pi / sqrt(8) = 1.11, so the rank correlation is
  # strong but far from 1 (Pearson of the logs is 0.69).
  assert 0.5 < ranking.spearman(sigma, np.abs(err)) < 0.9
  sp = unc.sparsification_curves(err, sigma)
  assert 0 < sp.ause < sp.ause_random
  assert sp.aurg > 0.3
  assert sp.ause == pytest.approx(sp.ause_random - sp.aurg, abs=1e-12)


# --------------------------------------------------------------------------
# Sparsification.


def brute_curve(err, score, fractions, counts):
  """RMSE of the kept pixels by explicit sorting, one fraction at a time."""
  err = np.asarray(err, float)
  order = sorted(range(len(err)), key=lambda i: -score[i])
  full = math.sqrt(np.mean(err**2))
  out = []
  for k in counts:
    kept = err[order[k:]]
    out.append(math.sqrt(np.mean(kept**2)) / full)
  return np.array(out)


@pytest.mark.parametrize('n', [100, 997])
def test_sparsification_matches_brute_force_distinct_sigma(n):
  rng = np.random.default_rng(n)
  err = rng.standard_normal(n) * rng.uniform(0.1, 3, n)
  sigma = np.abs(err) + rng.uniform(0, 2, n)   # informative but imperfect
  fractions = np.linspace(0, 0.99, 100)         # i / 100
  counts = [(i * n) // 100 for i in range(100)]  # exact integer floor(f n)
  sp = unc.sparsification_curves(err, sigma, fractions)
  np.testing.assert_allclose(sp.model, brute_curve(err, sigma, fractions,
                                                   counts), rtol=1e-12)
  np.testing.assert_allclose(sp.oracle, brute_curve(err, np.abs(err),
                                                    fractions, counts),
                             rtol=1e-12)
  assert np.all(sp.model >= sp.oracle - 1e-12)
  assert sp.model[0] == sp.oracle[0] == 1.0
  area = trapezoid(sp.model - sp.oracle, 0.01)
  assert sp.ause == pytest.approx(area, abs=1e-12)
  assert sp.aurg == pytest.approx(trapezoid(1 - sp.model, 0.01), abs=1e-12)
  assert unc.ause(err, sigma, fractions) == sp.ause


def test_sparsification_hand_example_four_pixels():
  err = [1.0, -2.0, 3.0, 4.0]
  sigma = [4.0, 1.0, 3.0, 2.0]   # removal order: pixels 0, 2, 3, 1
  fr = [0, 0.25, 0.5, 0.75]
  sp = unc.sparsification_curves(err, sigma, fr)
  mse = 7.5                       # (1 + 4 + 9 + 16) / 4
  model = np.sqrt(np.array([7.5, 29 / 3, 10, 4]) / mse)
  oracle = np.sqrt(np.array([7.5, 14 / 3, 5 / 2, 1]) / mse)
  np.testing.assert_allclose(sp.model, model, rtol=1e-14)
  np.testing.assert_allclose(sp.oracle, oracle, rtol=1e-14)
  np.testing.assert_array_equal(sp.random, np.ones(4))
  assert sp.ause == pytest.approx(trapezoid(model - oracle, 0.25), abs=1e-14)
  assert sp.aurg == pytest.approx(trapezoid(1 - model, 0.25), abs=1e-14)
  assert sp.aurg < 0              # this sigma is worse than chance
  assert sp.ause_random == pytest.approx(trapezoid(1 - oracle, 0.25),
                                         abs=1e-14)
  assert sp.rmse == pytest.approx(math.sqrt(mse), rel=1e-15)


def test_sparsification_ties_are_averaged_hand_example():
  err = [1.0, 2.0, 3.0, 4.0]
  sigma = [1.0, 5.0, 5.0, 0.5]    # pixels 1 and 2 tie for removal first
  sp = unc.sparsification_curves(err, sigma, [0, 0.25, 0.5, 0.75])
  # k = 1 removes pixel 1 or 2 with equal chance: E[kept sum] = 30 - 6.5.
  kept_mse = np.array([30 / 4, 23.5 / 3, 17 / 2, 16 / 1])
  np.testing.assert_allclose(sp.model, np.sqrt(kept_mse / 7.5), rtol=1e-14)


def test_sparsification_ties_equal_expectation_over_all_tie_breaks():
  rng = np.random.default_rng(3)
  err = rng.standard_normal(6)
  sigma = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 3.0])
  n = 6
  fr = np.arange(n) / n            # k = 0..5 (f n = 5 needs the rounding)
  kept = np.zeros(n)
  perms = list(itertools.permutations(range(n)))
  for perm in perms:               # every tie break, equally likely
    order = sorted(range(n), key=lambda i: (-sigma[i], perm[i]))
    sq = err[order]**2
    kept += [sq[k:].mean() for k in range(n)]
  kept /= len(perms)
  expected = np.sqrt(kept / np.mean(err**2))
  sp = unc.sparsification_curves(err, sigma, fr)
  np.testing.assert_allclose(sp.model, expected, rtol=1e-12)


def test_sparsification_independent_of_pixel_order_with_ties():
  rng = np.random.default_rng(4)
  err = rng.standard_normal(5000)
  sigma = np.round(np.abs(err) + rng.uniform(0, 1, err.size), 1)  # many ties
  perm = rng.permutation(err.size)
  a = unc.sparsification_curves(err, sigma)
  b = unc.sparsification_curves(err[perm], sigma[perm])
  np.testing.assert_allclose(a.model, b.model, rtol=1e-12)
  np.testing.assert_allclose(a.oracle, b.oracle, rtol=1e-12)


def test_constant_sigma_is_the_random_curve():
  err = np.array([1.0, 2.0, 3.0, 4.0])
  fr = [0, 0.25, 0.5, 0.75]
  sp = unc.sparsification_curves(err, 7.0, fr)   # scalar: constant sigma
  np.testing.assert_allclose(sp.model, 1.0, rtol=1e-14)
  np.testing.assert_array_equal(sp.random, 1.0)
  oracle = np.sqrt(np.array([7.5, 14 / 3, 5 / 2, 1]) / 7.5)
  assert sp.ause == pytest.approx(trapezoid(1 - oracle, 0.25), abs=1e-14)
  assert sp.ause == pytest.approx(sp.ause_random, abs=1e-14)
  assert sp.aurg == pytest.approx(0.0, abs=1e-14)
  # Larger sample, default fractions: flat at 1, whatever the pixel order.
  err, _ = calibrated_sample(20_000, seed=5)
  sp = unc.sparsification_curves(err, np.full(err.shape, 3.0))
  np.testing.assert_allclose(sp.model, 1.0, rtol=1e-10)
  assert abs(sp.aurg) < 1e-10


def test_oracle_sigma_gives_zero_ause():
  err, _ = calibrated_sample(50_000, seed=6)
  for sigma in (np.abs(err), 2 * np.abs(err), np.exp(np.abs(err))):
    sp = unc.sparsification_curves(err, sigma)
    assert abs(sp.ause) < 1e-12
    np.testing.assert_allclose(sp.model, sp.oracle, rtol=1e-12, atol=0)
    assert ranking.spearman(sigma, np.abs(err)) == pytest.approx(1.0, abs=1e-12)
  sp = unc.sparsification_curves(err, np.abs(err))
  np.testing.assert_array_equal(sp.model, sp.oracle)
  assert sp.ause == 0.0
  # Inversely ordered sigma is the worst: model above random everywhere.
  sp = unc.sparsification_curves(err, 1 / np.abs(err))
  assert np.all(sp.model[1:] > 1) and sp.aurg < 0


def test_sparsification_uses_only_the_order_of_sigma():
  err, sigma = calibrated_sample(10_000, seed=7)
  a = unc.sparsification_curves(err, sigma)
  b = unc.sparsification_curves(err, np.log(sigma**2))  # s = log sigma^2
  np.testing.assert_allclose(a.model, b.model, rtol=1e-12)
  assert a.ause == pytest.approx(b.ause, abs=1e-12)


def test_sparsification_plot_accepts_the_result(tmp_path):
  pytest.importorskip('matplotlib')
  from gramjax.reporting import figures  # pylint: disable=g-import-not-at-top
  err, sigma = calibrated_sample(2000, seed=8)
  out = figures.sparsification_plot(
      {'model': unc.sparsification_curves(err, sigma)}, tmp_path / 's.png')
  cal = unc.calibration_curve(err, sigma)
  out2 = figures.reliability_diagram({'model': (cal.expected, cal.observed)},
                                     tmp_path / 'r.png')
  assert out.stat().st_size > 0 and out2.stat().st_size > 0


def test_sparsification_all_zero_error_is_nan():
  sp = unc.sparsification_curves(np.zeros(10), np.arange(10.0))
  assert np.all(np.isnan(sp.model)) and math.isnan(sp.ause)


@pytest.mark.parametrize('fractions', [[0, 1.0], [-0.1, 0.5], [0.5, 0.2], []])
def test_sparsification_rejects_bad_fractions(fractions):
  with pytest.raises(ValueError):
    unc.sparsification_curves([1.0, 2.0], [1.0, 2.0], fractions)


def test_sparsification_keeps_at_least_one_pixel():
  sp = unc.sparsification_curves([1.0, 2.0, 3.0], [3.0, 2.0, 1.0],
                                 [0, 0.999999999])
  # Removes pixels 0 and 1 (k = floor(3 f) = 2, never 3); keeps err 3.
  assert sp.model[-1] == pytest.approx(math.sqrt(9 / (14 / 3)), rel=1e-14)


# --------------------------------------------------------------------------
# Coverage and AUCE.


def test_coverage_hand_example():
  err = [0.0, -1.0, 2.0, 3.0]
  cov = unc.coverage(err, 1.0, levels=(0.5, 0.9, 0.95, 0.99))
  # z = 0.674, 1.645, 1.960, 2.576.
  assert cov == {0.5: 0.25, 0.9: 0.5, 0.95: 0.5, 0.99: 0.75}
  # Interval bounds are included.
  z = unc.central_z(0.9)
  assert unc.coverage([z, -z, 10.0], 1.0, levels=[0.9])[0.9] == 2 / 3


def test_auce_extremes():
  # Every interval covers everything (err = 0) or nothing (sigma tiny):
  # AUCE = integral of alpha, resp. of 1 - alpha, over [0.01, 0.99] = 0.49.
  assert unc.auce(np.zeros(100), 1.0) == pytest.approx(0.49, abs=1e-12)
  assert unc.auce(np.ones(100), 1e-9) == pytest.approx(0.49, abs=1e-12)
  cal = unc.calibration_curve(np.zeros(10), 1.0, alphas=[0.2, 0.6])
  np.testing.assert_allclose(cal.expected, [0.8, 0.4])
  np.testing.assert_array_equal(cal.observed, [1.0, 1.0])
  assert cal.auce == pytest.approx(0.4 * (0.2 + 0.6) / 2)


@pytest.mark.parametrize('scale', [0.5, 2.0])
def test_mis_scaled_sigma(scale):
  err, sigma = calibrated_sample(seed=9)
  pred = scale * sigma
  cov = unc.coverage(err, pred)
  # |err| <= z(level) * scale * sigma  <=>  |Z| <= scale * z(level).
  for level, c in cov.items():
    expected = 1 - 2 * stats.norm.cdf(-scale * KNOWN_Z[level])
    assert abs(c - expected) < 0.005, (level, c, expected)
    assert (c < level - 0.05) if scale < 1 else (c > level + 0.03)
  # The case in words: sigma 2x too small, 90% interval: 2 Phi(1.645/2) - 1.
  if scale == 0.5:
    assert cov[0.9] == pytest.approx(
        2 * stats.norm.cdf(KNOWN_Z[0.9] / 2) - 1, abs=0.005)
  cal = unc.calibration_curve(err, pred)
  assert cal.auce > 0.1
  assert np.all(cal.observed < cal.expected) if scale < 1 else np.all(
      cal.observed > cal.expected)
  # A global rescaling leaves the ranking metrics untouched.
  assert ranking.spearman(pred, np.abs(err)) == ranking.spearman(sigma, np.abs(err))
  assert unc.ause(err, pred) == pytest.approx(unc.ause(err, sigma),
                                              abs=1e-12)


def test_calibration_rejects_bad_alphas_and_sigma():
  for alphas in ([0.0, 0.5], [0.5, 1.0], [0.6, 0.4]):
    with pytest.raises(ValueError):
      unc.calibration_curve([1.0], [1.0], alphas)
  with pytest.raises(ValueError):
    unc.coverage([1.0, 2.0], [1.0, 0.0])
  with pytest.raises(ValueError):
    unc.coverage([], [])


# --------------------------------------------------------------------------
# Spearman.


def test_spearman_uses_average_ranks_for_ties():
  # Tied values share the mean of their ranks: x correlates perfectly with
  # its average ranks (2, 4, 4, 1, 4), not with any tie-broken ranking.
  x = [10.0, 20.0, 20.0, 5.0, 20.0]
  assert ranking.spearman(x, [2, 4, 4, 1, 4]) == pytest.approx(1.0, abs=1e-15)
  assert ranking.spearman(x, [2, 3, 4, 1, 5]) < 1 - 1e-3


def test_spearman_hand_examples_with_ties():
  # Ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5).
  assert ranking.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(
      math.sqrt(0.9), abs=1e-15)
  # Ranks (1.5, 1.5, 3.5, 3.5) and (1, 2.5, 2.5, 4): 3 / sqrt(4 * 4.5).
  assert ranking.spearman([1, 1, 2, 2], [1, 2, 2, 3]) == pytest.approx(
      1 / math.sqrt(2), abs=1e-15)
  assert ranking.spearman([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
  assert ranking.spearman([1, 2, 3], [1, 8, 27]) == 1.0


def test_spearman_undefined_cases_are_nan_without_warnings(recwarn):
  assert math.isnan(ranking.spearman(np.full(5, 2.0), [1, 2, 3, 4, 5]))
  assert math.isnan(ranking.spearman([1, 2, 3], [0, 0, 0]))
  assert math.isnan(ranking.spearman([1.0], [2.0]))
  assert not recwarn.list


def test_spearman_matches_scipy_with_ties():
  rng = np.random.default_rng(10)
  a = rng.integers(0, 20, 3000).astype(float)
  b = a + rng.integers(0, 15, 3000)
  assert ranking.spearman(a, b) == pytest.approx(
      stats.spearmanr(a, b).statistic, abs=1e-12)


# --------------------------------------------------------------------------
# y_channel.


def test_y_channel_known_colours_and_variances():
  mu = np.array([[255.0, 255.0, 255.0], [0.0, 0.0, 0.0],
                 [255.0, 0.0, 0.0], [0.0, 255.0, 0.0]])
  var = np.array([[1.0, 1.0, 1.0], [0.0, 4.0, 0.0],
                  [0.0, 0.0, 0.0], [255.0**2, 0.0, 0.0]])
  mu_y, var_y = luma.y_channel(mu, var, correlation=0.0)
  np.testing.assert_allclose(mu_y, [235.0, 16.0, 16 + 65.481, 16 + 128.553],
                             rtol=1e-14)
  np.testing.assert_allclose(
      var_y, [(65.481**2 + 128.553**2 + 24.966**2) / 255**2,
              4 * (128.553 / 255)**2, 0.0, 65.481**2], rtol=1e-14)
  rng = np.random.default_rng(13)
  img = rng.uniform(0, 255, (6, 7, 3))
  mu_y, var_y = luma.y_channel(img, np.ones_like(img), correlation=0.0)
  assert mu_y.shape == var_y.shape == (6, 7)
  np.testing.assert_allclose(mu_y, metrics.rgb_to_y(img), rtol=1e-14)
  np.testing.assert_array_equal(mu_y, 16 + img @ metrics.LUMA_255)
  np.testing.assert_allclose(var_y, metrics.LUMA_255 @ metrics.LUMA_255,
                             rtol=1e-15)
  with pytest.raises(ValueError):
    luma.y_channel(np.zeros((4, 4)), np.zeros((4, 4)))


def test_y_channel_variance_of_independent_channel_errors():
  """Monte Carlo: Y of independently perturbed channels has var_Y."""
  rng = np.random.default_rng(14)
  sd = np.array([3.0, 1.0, 8.0])
  samples = 100.0 + sd * rng.standard_normal((200_000, 3))
  y = metrics.rgb_to_y(samples)
  _, var_y = luma.y_channel(np.full(3, 100.0), sd**2, correlation=0.0)
  assert np.var(y) == pytest.approx(var_y, rel=0.01)


def correlated_errors(rng, sd, rho, n):
  """(n, 3) Gaussian errors with standard deviations ``sd`` (3,) and
  correlation ``rho`` between every pair of channels."""
  corr = np.full((3, 3), rho) + (1.0 - rho) * np.eye(3)
  return rng.multivariate_normal(np.zeros(3), corr * np.outer(sd, sd), n)


def test_y_channel_full_correlation_adds_the_sigmas():
  sd = np.array([3.0, 1.0, 8.0])
  _, var_y = luma.y_channel(np.zeros(3), sd**2)     # Default: rho = 1.
  assert luma.Y_CORRELATION == 1.0
  assert np.sqrt(var_y) == pytest.approx(sd @ metrics.LUMA_255, rel=1e-14)
  _, var_half = luma.y_channel(np.zeros(3), sd**2, correlation=0.5)
  _, var_none = luma.y_channel(np.zeros(3), sd**2, correlation=0.0)
  assert var_half == pytest.approx(0.5 * (var_y + var_none), rel=1e-14)
  with pytest.raises(ValueError, match='correlation'):
    luma.y_channel(np.zeros(3), sd**2, correlation=1.5)


@pytest.mark.parametrize('rho', [1.0, 0.9, 0.0])
def test_y_coverage_is_nominal_under_the_matching_correlation(rho):
  """Per-pixel sigmas exact for every channel, errors of correlation rho:
  Y's 90 % coverage is 0.9 under the matching setting (issue 12), and off
  under a wrong one."""
  rng = np.random.default_rng(int(rho * 10))
  n = 200_000
  sd = rng.uniform(1.0, 12.0, (n, 3))
  err = correlated_errors(rng, np.ones(3), rho, n) * sd
  mu = rng.uniform(0, 255, (n, 3))
  mu_y, var_y = luma.y_channel(mu, sd**2, correlation=rho)
  err_y = metrics.rgb_to_y(mu + err) - mu_y
  cov = unc.coverage(err_y, np.sqrt(var_y), levels=(0.9,))[0.9]
  assert cov == pytest.approx(0.9, abs=0.01)
  assert unc.coverage(err, sd,
                      levels=(0.9,))[0.9] == pytest.approx(0.9, abs=0.01)
  wrong = 0.0 if rho > 0.5 else 1.0
  _, var_wrong = luma.y_channel(mu, sd**2, correlation=wrong)
  off = unc.coverage(err_y, np.sqrt(var_wrong), levels=(0.9,))[0.9]
  assert abs(off - 0.9) > 0.05
  assert luma.channel_correlation(err / sd) == pytest.approx(rho, abs=0.01)


def test_channel_correlation_known_answers():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((1000, 1))
  assert luma.channel_correlation(np.hstack([x, 2 * x, x + 5])) == (
      pytest.approx(1.0, abs=1e-12))
  e = rng.standard_normal((1000, 3))
  want = np.mean([np.corrcoef(e[:, i], e[:, j])[0, 1]
                  for i, j in ((0, 1), (0, 2), (1, 2))])
  assert luma.channel_correlation(e.reshape(10, 100, 3)) == pytest.approx(
      want, rel=1e-12)
  assert math.isnan(luma.channel_correlation(np.ones((5, 3))))
