"""PSNR, SSIM and the measuring conventions against hand values and
independent references (a brute-force SSIM; scikit-image where installed)."""

import math

import numpy as np
import pytest
from PIL import Image

from gramjax.metrics import quality as metrics


def ref_ssim(a, b, window, sample_covariance, data_range=255.0):
  """Brute force: every valid window position, weights as a 2-D array,
  weighted moments computed directly (no separable filtering)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  k = window.shape[0]
  wa = np.lib.stride_tricks.sliding_window_view(a, (k, k))
  wb = np.lib.stride_tricks.sliding_window_view(b, (k, k))
  mu_a = np.einsum('ijkl,kl->ij', wa, window)
  mu_b = np.einsum('ijkl,kl->ij', wb, window)
  da = wa - mu_a[..., None, None]
  db = wb - mu_b[..., None, None]
  var_a = np.einsum('ijkl,kl->ij', da * da, window)
  var_b = np.einsum('ijkl,kl->ij', db * db, window)
  cov = np.einsum('ijkl,kl->ij', da * db, window)
  if sample_covariance:
    n = k * k
    var_a, var_b, cov = (x * n / (n - 1) for x in (var_a, var_b, cov))
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2) /
       ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
  return float(s.mean())


def gaussian_window_2d(size=11, sigma=1.5):
  """MATLAB fspecial('gaussian', 11, 1.5), built in 2-D."""
  r = (size - 1) / 2
  y, x = np.mgrid[-r:r + 1, -r:r + 1]
  g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
  return g / g.sum()


def random_pair(seed, shape=(40, 53)):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, shape).astype(np.float64)
  noise = rng.normal(0, 20, shape)
  b = np.clip(a + noise, 0, 255)
  return a, b


# ------------------------------------------------------------------ PSNR --

@pytest.mark.parametrize('d', [1, 3, 10])
def test_psnr_of_a_constant_offset(d):
  a = np.full((16, 16, 3), 100.0)
  assert metrics.psnr(a, a + d) == pytest.approx(
      10 * math.log10(255**2 / d**2), abs=1e-12)


def test_psnr_identical_is_inf_and_shapes_must_match():
  a = np.zeros((8, 8))
  assert metrics.psnr(a, a) == float('inf')
  with pytest.raises(ValueError, match='shape'):
    metrics.psnr(a, np.zeros((8, 9)))


def test_psnr_shave_ignores_the_border():
  a = np.full((20, 20), 50.0)
  b = a.copy()
  b[:3] = 0           # Errors only in the top three rows...
  b[5:15, 5:15] += 2  # ... and a known interior error.
  assert metrics.psnr(a, b, shave=3) == pytest.approx(
      10 * math.log10(255**2 / (4 * 100 / 196)))
  assert metrics.psnr(a, b, shave=2) < metrics.psnr(a, b, shave=3)
  with pytest.raises(ValueError, match='shave'):
    metrics.psnr(a, b, shave=10)


# -------------------------------------------------------------------- Y --

@pytest.mark.parametrize('rgb,y', [
    ((0, 0, 0), 16.0),
    ((255, 255, 255), 235.0),
    ((255, 0, 0), 16 + 65.481),
    ((0, 255, 0), 16 + 128.553),
    ((0, 0, 255), 16 + 24.966),
    ((128, 64, 32), 16 + (65.481 * 128 + 128.553 * 64 + 24.966 * 32) / 255),
])
def test_y_of_known_colours(rgb, y):
  img = np.broadcast_to(np.array(rgb, np.uint8), (2, 3, 3))
  np.testing.assert_allclose(metrics.rgb_to_y(img), y, rtol=0, atol=1e-12)


def test_luma_constants():
  np.testing.assert_array_equal(metrics.LUMA, [65.481, 128.553, 24.966])
  assert metrics.LUMA.sum() == pytest.approx(219.0, abs=1e-12)
  np.testing.assert_array_equal(metrics.LUMA_255, metrics.LUMA / 255.0)
  for w in (metrics.LUMA, metrics.LUMA_255):
    with pytest.raises(ValueError, match='read-only'):
      w[0] = 0.0
  rgb = np.array([10.0, 200.0, 37.0])
  assert metrics.rgb_to_y(rgb) == pytest.approx(16 + metrics.LUMA_255 @ rgb,
                                                abs=1e-12)


@pytest.mark.parametrize('d', [1, 5])
def test_psnr_on_y_of_a_constant_rgb_offset(d):
  # Y moves by 219 d / 255 when every channel moves by d.
  a = np.full((12, 12, 3), 90.0)
  got = metrics.psnr(metrics.rgb_to_y(a + d), metrics.rgb_to_y(a), shave=2)
  assert got == pytest.approx(20 * math.log10(255 / (219 * d / 255)),
                              abs=1e-9)


def test_grey_of_equal_channels_is_the_grey_value():
  g = np.arange(256, dtype=np.uint8).reshape(16, 16)
  rgb = np.repeat(g[..., None], 3, axis=-1)
  np.testing.assert_allclose(metrics.rgb_to_grey(rgb), g, atol=1e-12)
  # Y of grey is not grey: 16 + 219 g / 255.
  np.testing.assert_allclose(metrics.rgb_to_y(rgb), 16 + 219 * (g / 255.0),
                             atol=1e-12)


def test_measured_channel_rounds_like_matlab():
  img = np.array([[[10, 200, 37]]], np.uint8)
  y = metrics.rgb_to_y(img)
  assert y[0, 0] != np.round(y[0, 0])   # A fractional Y...
  assert metrics.measured_channel(img, grey=False,
                                  round_levels=True)[0, 0] == np.floor(
                                      y[0, 0] + 0.5)


# ------------------------------------------------------------------ SSIM --

@pytest.mark.parametrize('convention', ['standard', 'official_code'])
def test_ssim_of_identical_images_is_one(convention):
  a, _ = random_pair(0)
  assert metrics.ssim(a, a, convention=convention) == pytest.approx(1.0,
                                                                    abs=1e-12)
  assert metrics.ssim(a, a, shave=4, convention=convention) == pytest.approx(
      1.0, abs=1e-12)


def test_ssim_standard_matches_brute_force_gaussian():
  for seed in range(3):
    a, b = random_pair(seed)
    want = ref_ssim(a, b, gaussian_window_2d(), sample_covariance=False)
    assert metrics.ssim(a, b, convention='standard') == pytest.approx(
        want, abs=1e-10)


def test_ssim_official_code_matches_brute_force_uniform():
  for seed in range(3):
    a, b = random_pair(seed)
    want = ref_ssim(a, b, np.full((7, 7), 1 / 49), sample_covariance=True)
    assert metrics.ssim(a, b, convention='official_code') == pytest.approx(
        want, abs=1e-10)


def test_ssim_shave_is_a_crop():
  a, b = random_pair(5, (60, 70))
  want = ref_ssim(a[6:-6, 6:-6], b[6:-6, 6:-6], gaussian_window_2d(), False)
  assert metrics.ssim(a, b, shave=6) == pytest.approx(want, abs=1e-10)


def test_ssim_falls_with_noise_and_conventions_differ():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (48, 48)).astype(np.float64)
  small = np.clip(a + rng.normal(0, 5, a.shape), 0, 255)
  large = np.clip(a + rng.normal(0, 40, a.shape), 0, 255)
  assert 1 > metrics.ssim(a, small) > metrics.ssim(a, large) > 0
  assert metrics.ssim(a, large) != pytest.approx(
      metrics.ssim(a, large, convention='official_code'), abs=1e-3)


def test_ssim_refuses_images_smaller_than_the_window():
  with pytest.raises(ValueError, match='smaller'):
    metrics.ssim(np.zeros((10, 30)), np.zeros((10, 30)))
  with pytest.raises(ValueError, match='unknown'):
    metrics.ssim(np.zeros((30, 30)), np.zeros((30, 30)), convention='matlab')


def test_ssim_matches_skimage():
  skm = pytest.importorskip('skimage.metrics')
  for seed in range(2):
    a, b = random_pair(seed, (45, 61))
    std = skm.structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False)
    off = skm.structural_similarity(a, b, data_range=255,
                                    use_sample_covariance=True, win_size=7)
    assert metrics.ssim(a, b, convention='standard') == pytest.approx(
        std, abs=1e-6)
    assert metrics.ssim(a, b, convention='official_code') == pytest.approx(
        off, abs=1e-6)


# ----------------------------------------------------------- conventions --

def test_conventions_shave_and_describe_themselves():
  std = metrics.get_convention('standard')
  off = metrics.get_convention('official_code')
  assert std.shave_for(4) == 4 and std.shave_for(3) == 3
  assert off.shave_for(4) == 10
  assert '11x11 Gaussian' in std.describe(4) and '4 px' in std.describe(4)
  assert '7x7 uniform' in off.describe(4) and '10 px' in off.describe(4)
  with pytest.raises(ValueError, match='unknown convention'):
    metrics.get_convention('nope')


def test_measure_standard_is_rounded_y_with_scale_shave():
  rng = np.random.default_rng(2)
  hr = rng.integers(0, 256, (40, 44, 3)).astype(np.uint8)
  sr = np.clip(hr + rng.normal(0, 8, hr.shape), 0, 255).astype(np.uint8)
  p, s = metrics.measure(sr, hr, scale=4, convention='standard')
  ya = np.floor(metrics.rgb_to_y(sr) + 0.5)
  yb = np.floor(metrics.rgb_to_y(hr) + 0.5)
  assert p == pytest.approx(metrics.psnr(ya, yb, shave=4), abs=1e-12)
  assert s == pytest.approx(ref_ssim(ya[4:-4, 4:-4], yb[4:-4, 4:-4],
                                     gaussian_window_2d(), False), abs=1e-10)
  p2, s2 = metrics.measure(sr, hr, scale=4, convention='official_code')
  assert p2 == pytest.approx(
      metrics.psnr(metrics.rgb_to_y(sr), metrics.rgb_to_y(hr), shave=10))
  assert s2 == pytest.approx(ref_ssim(
      metrics.rgb_to_y(sr)[10:-10, 10:-10],
      metrics.rgb_to_y(hr)[10:-10, 10:-10], np.full((7, 7), 1 / 49), True),
                             abs=1e-10)


def test_measure_grey_uses_grey_values_not_y():
  rng = np.random.default_rng(3)
  g = rng.integers(0, 256, (32, 32)).astype(np.uint8)
  g2 = np.clip(g + rng.normal(0, 6, g.shape), 0, 255).astype(np.uint8)
  hr = np.repeat(g[..., None], 3, -1)
  sr = np.repeat(g2[..., None], 3, -1)
  p_grey, _ = metrics.measure(sr, hr, scale=2, grey=True)
  p_y, _ = metrics.measure(sr, hr, scale=2, grey=False)
  assert p_grey == pytest.approx(metrics.psnr(g2, g, shave=2), abs=1e-12)
  # Y compresses grey differences by 219/255: about +1.32 dB.
  assert p_y - p_grey == pytest.approx(20 * math.log10(255 / 219), abs=0.1)


@pytest.mark.parametrize('mode,grey', [('L', True), ('LA', True),
                                       ('I;16', True), ('RGB', False),
                                       ('RGBA', False)])
def test_greyscale_is_decided_by_the_file_mode(tmp_path, mode, grey):
  path = tmp_path / 'x.png'
  Image.new(mode, (8, 8)).save(path)
  assert metrics.is_greyscale_file(path) is grey
  assert (mode in metrics.GREY_MODES) is grey
