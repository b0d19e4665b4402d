"""gramjax.metrics.conformal: exact lambdas, and the guarantees checked
against the true risk of a model whose error distribution is known."""

import math

import numpy as np
import pytest
from scipy import special, stats

from gramjax.metrics import conformal

IMAGE_SPREAD = 0.3     # log-sd of a per-image error scale (pixels correlate).


def synthetic_images(rng, n, pixels=200):
  """Exchangeable images: err = sigma * s_i * z, sigma per pixel, s_i per
  image (log-normal), z standard normal. The ratio |err|/sigma = s_i |z|."""
  out = []
  for _ in range(n):
    sigma = np.exp(rng.normal(0.0, 0.5, pixels))
    s = math.exp(rng.normal(0.0, IMAGE_SPREAD))
    out.append(conformal.ImageRatios.of(sigma * s * rng.normal(size=pixels),
                                        sigma))
  return out


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


def true_risk(lam):
  """E over images of the share of values outside +-lam*sigma:
  E_s[2 Phi(-lam / s)], s = exp(IMAGE_SPREAD x), x ~ N(0, 1)."""
  s = np.exp(IMAGE_SPREAD * _NODES)
  return float(np.sum(_WEIGHTS * 2 * special.ndtr(-lam / s))
               / np.sqrt(2 * np.pi))


def brute_force_crc(images, alpha):
  n = len(images)
  cands = np.unique(np.concatenate([[0.0]] + [im.sorted for im in images]))
  for lam in cands:
    risk = np.mean([im.loss(lam) for im in images])
    if (n * risk + 1) / (n + 1) <= alpha:
      return lam
  return math.inf


def test_image_loss_counts_the_values_strictly_outside():
  im = conformal.ImageRatios.of([1.0, -2.0, 3.0, 0.5], [1.0, 1.0, 1.0, 0.5])
  assert im.sorted.tolist() == [1.0, 1.0, 2.0, 3.0]
  assert [im.loss(x) for x in (0.0, 1.0, 1.5, 2.0, 3.0)] == [
      1.0, 0.5, 0.5, 0.25, 0.0]


@pytest.mark.parametrize('seed', range(5))
def test_crc_lambda_is_the_exact_infimum(seed):
  rng = np.random.default_rng(seed)
  # Images of different sizes, with ties (rounded errors), some zeros.
  images = [conformal.ImageRatios.of(np.round(rng.normal(size=m) * 4) / 4)
            for m in rng.integers(5, 40, size=12)]
  for alpha in (0.08, 0.1, 0.2, 0.5):
    assert conformal.crc_lambda(images, alpha) == brute_force_crc(images,
                                                                   alpha)


@pytest.mark.parametrize('seed', range(3))
def test_rcps_lambda_is_the_exact_infimum(seed):
  """Against every candidate in order: the first whose Hoeffding-Bentkus
  p-value is below delta."""
  rng = np.random.default_rng(seed)
  images = synthetic_images(rng, 30, pixels=25)
  cands = np.unique(np.concatenate([[0.0]] + [im.sorted for im in images]))
  for alpha, delta in ((0.2, 0.1), (0.3, 0.05)):
    want = next((lam for lam in cands if conformal.hb_p_value(
        np.mean([im.loss(lam) for im in images]), 30, alpha) < delta),
                math.inf)
    assert conformal.rcps_lambda(images, alpha, delta) == want


def test_too_few_images_give_an_infinite_lambda():
  rng = np.random.default_rng(1)
  assert conformal.min_images(0.1) == 9
  assert conformal.crc_lambda(synthetic_images(rng, 8), 0.1) == math.inf
  assert math.isfinite(conformal.crc_lambda(synthetic_images(rng, 9), 0.1))


def test_lambda_is_monotone_in_alpha_and_delta():
  rng = np.random.default_rng(2)
  images = synthetic_images(rng, 40)
  alphas = np.linspace(0.03, 0.5, 25)
  crc = [conformal.crc_lambda(images, a) for a in alphas]
  rcps = [conformal.rcps_lambda(images, a, 0.1) for a in alphas]
  for lams in (crc, rcps):          # inf where nothing is certified.
    assert all(a >= b for a, b in zip(lams, lams[1:])), lams
  assert math.isfinite(rcps[-1])
  # RCPS bounds the risk with confidence: wider than CRC's mean control.
  assert all(r >= c for r, c in zip(rcps, crc))
  deltas = [conformal.rcps_lambda(images, 0.1, d) for d in (0.01, 0.1, 0.3)]
  assert deltas[0] >= deltas[1] >= deltas[2]


def test_hb_p_value_against_its_two_bounds():
  n, alpha = 50, 0.1
  for risk in (0.0, 0.02, 0.06, 0.1, 0.3):
    k = math.ceil(n * risk - 1e-9)
    bentkus = math.e * stats.binom.cdf(k, n, alpha)
    r = min(risk, alpha)
    h = ((r * math.log(r / alpha) if r > 0 else 0.0)
         + (1 - r) * math.log((1 - r) / (1 - alpha)))
    assert conformal.hb_p_value(risk, n, alpha) == pytest.approx(
        min(math.exp(-n * h), bentkus), rel=1e-12)
  # At or above alpha the Hoeffding term is 1: only Bentkus' is left,
  # and it does not fall with the risk.
  for risk in (0.1, 0.2):
    k = math.ceil(n * risk - 1e-9)
    assert conformal.hb_p_value(risk, n, alpha) == pytest.approx(
        min(1.0, math.e * stats.binom.cdf(k, n, alpha)), rel=1e-12)
  assert conformal.hb_p_value(0.2, n, alpha) >= 1.0


def test_crc_controls_the_mean_risk_within_its_finite_sample_bounds():
  """Over 1,000 draws of n = 99 calibration images, the true risk at
  CRC's lambda averages within [alpha - 2/(n+1), alpha] (Monte-Carlo error
  aside)."""
  rng = np.random.default_rng(0)
  n, alpha, trials = 99, 0.1, 1000
  risks = np.array([true_risk(conformal.crc_lambda(
      synthetic_images(rng, n), alpha)) for _ in range(trials)])
  mc = 3 * risks.std() / math.sqrt(trials)
  assert alpha - 2 / (n + 1) - mc <= risks.mean() <= alpha + mc
  # Not a trivial bound: a sizeable share of draws lands above alpha.
  assert 0.1 < np.mean(risks > alpha) < 0.9


def test_rcps_bounds_the_risk_with_probability_one_minus_delta():
  rng = np.random.default_rng(1)
  n, alpha, delta, trials = 40, 0.1, 0.1, 1000
  risks = np.array([true_risk(conformal.rcps_lambda(
      synthetic_images(rng, n), alpha, delta)) for _ in range(trials)])
  violations = np.mean(risks > alpha)
  mc = 3 * math.sqrt(delta * (1 - delta) / trials)
  assert violations <= delta + mc
  assert risks.mean() < alpha        # Conservative, as a bound must be.


def test_bad_levels_are_refused():
  images = synthetic_images(np.random.default_rng(3), 10)
  with pytest.raises(ValueError, match=r'alpha=1.5 must be in \(0, 1\)'):
    conformal.crc_lambda(images, 1.5)
  with pytest.raises(ValueError, match=r'delta=0 must be in \(0, 1\)'):
    conformal.rcps_lambda(images, 0.1, 0)
  with pytest.raises(ValueError, match='unknown conformal method'):
    conformal.fit('lac', images)
