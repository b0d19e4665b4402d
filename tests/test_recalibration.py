"""gramjax.metrics.recalibration against independent computations: sigma scaling's
closed form against a numerical minimiser of the NLL, isotonic
recalibration against Kuleshov et al.'s algorithm run with scikit-learn's
IsotonicRegression, and both against the nominal coverage on fresh data."""

import json
import math

import numpy as np
import pytest
from scipy import optimize
from scipy import special

from gramjax.metrics import calibration
from gramjax.metrics import summary
from gramjax.metrics import recalibration as rc
from gramjax.metrics import uncertainty
from gramjax.metrics.residuals import Residuals


def sample(seed, n=200_000, scale=2.0, dist='normal'):
  """(err, sigma): sigma log-uniform in [1, 10]; err = scale * sigma * T,
  T standard normal or (dist='t') Student t with 3 degrees of freedom
  scaled to unit variance."""
  rng = np.random.default_rng(seed)
  sigma = np.exp(rng.uniform(0.0, math.log(10.0), n))
  t = (rng.standard_normal(n) if dist == 'normal'
       else rng.standard_t(3, n) / math.sqrt(3.0))
  return scale * sigma * t, sigma


def test_sigma_scaling_is_the_nll_minimiser():
  err, sigma = sample(0, n=20_000, scale=2.5)
  fitted = rc.fit('sigma_scaling', err, sigma)
  best = optimize.minimize_scalar(
      lambda s: uncertainty.gaussian_nll(err, s * sigma), bounds=(0.1, 10),
      method='bounded', options={'xatol': 1e-8})
  assert fitted.scale == pytest.approx(best.x, rel=1e-5)
  assert fitted.scale == pytest.approx(2.5, rel=0.02)
  assert fitted.quantiles == ()


@pytest.mark.parametrize('scale', [0.5, 2.0])
def test_sigma_scaling_calibrates_fresh_gaussian_data(scale):
  """Over- and under-confident sigma: fitted on one sample, the next one
  is calibrated; the ranking figures do not move."""
  fitted = rc.fit('sigma_scaling', *sample(1, scale=scale))
  err, sigma = sample(2, scale=scale)
  before = summary.summarize(err, sigma)
  after = rc.figures(fitted, err, sigma)
  assert abs(before['coverage_90'] - 0.9) > 0.09
  assert after['coverage_90'] == pytest.approx(0.9, abs=0.005)
  assert after['mace'] < 0.005 < before['mace']
  assert after['nll'] < before['nll']
  for key in ('ause', 'aurg', 'spearman', 'rmse'):
    assert after[key] == pytest.approx(before[key], rel=1e-9), key
  assert after['mean_sigma'] == pytest.approx(fitted.scale *
                                              before['mean_sigma'])


def test_isotonic_is_kuleshovs_recalibration():
  """Kuleshov et al. (2018), Algorithm 1, by hand: the PIT values p_t =
  Phi(t) of the fitting set, the empirical frequencies P(p <= p_t), an
  isotonic regression of the second on the first (scikit-learn); the
  recalibrated CDF of a new t is R(Phi(t))."""
  sklearn_isotonic = pytest.importorskip('sklearn.isotonic')
  err, sigma = sample(3, n=20_000, dist='t')
  fitted = rc.fit('isotonic', err, sigma)
  pit = special.ndtr(err / sigma)
  freq = np.searchsorted(np.sort(pit), pit, side='right') / pit.size
  iso = sklearn_isotonic.IsotonicRegression(out_of_bounds='clip')
  iso.fit(pit, freq)
  t_new = np.linspace(-4, 4, 401)
  want = iso.predict(special.ndtr(t_new))
  got = rc.cdf(fitted, t_new)
  np.testing.assert_allclose(got, want, atol=2.0 / rc.QUANTILE_KNOTS)
  # Its quantile function inverts it.
  p = np.linspace(0.01, 0.99, 99)
  np.testing.assert_allclose(rc.cdf(fitted, rc.quantile(fitted, p)), p,
                             atol=1e-9)


def test_isotonic_fixes_every_level_where_sigma_scaling_cannot():
  """Heavy-tailed errors (Student t, 3 dof): one factor on sigma cannot
  get the 50 % and the 95 % intervals right at once; isotonic does, on
  fresh data, and keeps the ranking figures."""
  fit_err, fit_sigma = sample(4, dist='t')
  err, sigma = sample(5, dist='t')
  scaled = rc.figures(rc.fit('sigma_scaling', fit_err, fit_sigma), err,
                      sigma)
  iso_fit = rc.fit('isotonic', fit_err, fit_sigma)
  iso = rc.figures(iso_fit, err, sigma)
  for level in (50, 80, 90, 95):
    assert iso[f'coverage_{level}'] == pytest.approx(level / 100, abs=0.005)
  assert iso['mace'] < 0.005 < scaled['mace']
  assert iso['auce'] < scaled['auce']
  assert math.isnan(iso['nll'])
  before = summary.summarize(err, sigma)
  for key in ('ause', 'spearman', 'rmse'):
    assert iso[key] == pytest.approx(before[key], rel=1e-9), key
  # Its interval score uses its own (t-quantile) intervals: better than
  # the Gaussian ones of the same equivalent scale.
  gaussian_same_scale = summary.summarize(err, iso_fit.scale * sigma)
  assert iso['interval_score'] < gaussian_same_scale['interval_score']


@pytest.mark.parametrize('method', rc.METHODS)
def test_reusing_the_raw_ranking_figures_changes_nothing(method):
  fitted = rc.fit(method, *sample(9, n=20_000, dist='t'))
  err, sigma = sample(10, n=20_000, dist='t')
  full = rc.figures(fitted, err, sigma)
  fast = rc.figures(fitted, err, sigma,
                    before=summary.summarize(err, sigma))
  assert set(fast) == set(full)
  for key, value in full.items():
    assert fast[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key


def test_interval_score_with_explicit_bounds_equals_a_direct_sum():
  err, sigma = sample(6, n=3_000, dist='t')
  levels = np.array([0.2, 0.5, 0.9])
  lower, upper = np.array([-0.4, -1.0, -1.2]), np.array([0.1, 0.5, 2.0])
  want = []
  for p, a, b in zip(levels, lower, upper):
    l, u = a * sigma, b * sigma
    want.append(np.mean((u - l) + 2 / (1 - p) * (np.maximum(l - err, 0) +
                                                 np.maximum(err - u, 0))))
  got = calibration.interval_score(err, sigma, levels, (lower, upper))
  assert got == pytest.approx(np.mean(want), rel=1e-10)


MODEL = {'step': 12, 'weights': 'ema', 'digest': 'ab' * 32, 'scale': 4,
         'loss': 'gram'}


def test_fit_channels_round_trips_through_the_workdir(tmp_path):
  pairs = {'rgb': Residuals.of(*sample(7, n=5_000)),
           'y': Residuals.of(*sample(8, n=5_000, scale=3.0))}
  for method in rc.METHODS:
    recal = rc.fit_channels(method, pairs, fitted_on='held',
                            images=[('a.png', 'cd' * 32)], model=MODEL,
                            y_correlation=0.7)
    rc.save(tmp_path, recal)
    assert rc.load(tmp_path) == recal
    assert rc.for_model(tmp_path, MODEL) == recal
    assert rc.for_model(tmp_path, MODEL, use=False) is None
    # Other weights at the same step, or another scale: refused.
    for other in ({**MODEL, 'digest': 'ef' * 32}, {**MODEL, 'scale': 2}):
      with pytest.raises(rc.StaleCalibration, match='was fitted on other '
                         r'weights \(step 12, ema weights abababababab, x4\)'):
        rc.for_model(tmp_path, other)
    assert recal.values['y'].scale == pytest.approx(3.0, rel=0.05)
  assert rc.load(tmp_path / 'nothing') is None


def test_interval_calibration_round_trips_and_states_its_definition(
    tmp_path):
  interval = rc.Interval(0.1, None, 20, {'rgb': 1.8, 'y': 2.1},
                         {'rgb': 9.5, 'y': 8.0})
  recal = rc.Recalibration('crc', 'calib', (('a.png', 'cd' * 32),), MODEL,
                           0.6, {}, interval)
  rc.save(tmp_path, recal)
  saved = json.loads((tmp_path / rc.FILE_NAME).read_text())
  assert saved['interval']['definition'].startswith(
      'mean +- lambda * sigma per value, sigma = exp(log_var / 2) of the raw '
      "log-variance in the model's [-1, 1] units")
  assert saved['interval']['lambda'] == {'rgb': 1.8, 'y': 2.1}
  assert (saved['interval']['n'], saved['interval']['alpha']) == (20, 0.1)
  assert saved['model'] == MODEL and 'values' not in saved
  assert rc.load(tmp_path) == recal
  assert recal.describe().startswith('90 % interval, CRC on 1 images of '
                                     'calib (step 12; rgb lambda = 1.800')


@pytest.mark.parametrize('content', [
    'not json', '{"method": "platt"}',
    json.dumps({'format': 2, 'method': 'sigma_scaling', 'fitted_on': 'x',
                'images': [], 'model': MODEL, 'y_correlation': 1.0,
                'values': {'rgb': {'scale': -1.0}, 'y': {'scale': 1.0}}}),
    # Written before calibrations recorded their weights: not applied.
    json.dumps({'method': 'sigma_scaling', 'fitted_on': 'x', 'images': [],
                'step': 1, 'y_correlation': 1.0,
                'values': {'rgb': {'scale': 1.0}, 'y': {'scale': 1.0}}})])
def test_damaged_calibration_file_names_it(tmp_path, content):
  (tmp_path / rc.FILE_NAME).write_text(content)
  with pytest.raises(rc.StaleCalibration, match='calibration.json: not a '
                     'calibration this version can apply'):
    rc.load(tmp_path)


def test_unknown_method():
  with pytest.raises(ValueError, match='sigma_scaling, isotonic'):
    rc.fit('platt', np.ones(3), np.ones(3))
