"""Pixel conventions: ranges, units and LR making (gramjax.core.pixels)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gramjax.core import imresize
from gramjax.core import pixels
from gramjax.core.errors import UserError


def photo(h=40, w=36, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def test_signed_range_is_exact_and_round_trips():
  hr = photo()
  for xp, fn in ((np, lambda x: pixels.to_signed(x)),
                 (jnp, jax.jit(lambda x: pixels.to_signed(x, jnp)))):
    signed = np.asarray(fn(xp.asarray(hr)))
    assert signed.min() >= -1.0 and signed.max() <= 1.0
    assert signed[hr == 0].min() == -1.0 and signed[hr == 255].max() == 1.0
    np.testing.assert_array_equal(pixels.mean_to_uint8(signed), hr)


def test_sigma_in_grey_levels():
  """log_var is log sigma^2 in [-1, 1] units; sigma_grey is the root of
  the channel-mean variance in [0, 255] units."""
  sigma = np.array([2.0, 5.0, 11.0])               # Grey levels, per channel.
  log_var = np.log((sigma / 127.5) ** 2) * np.ones((4, 5, 3))
  got = pixels.sigma_grey(log_var)
  assert got.shape == (4, 5)
  np.testing.assert_allclose(got, np.sqrt(np.mean(sigma**2)), rtol=1e-12)


def test_greyscale_mean_is_its_luma():
  grey = np.random.default_rng(1).integers(0, 256, (6, 7), np.uint8)
  mean = pixels.to_signed(np.repeat(grey[..., None], 3, axis=-1))
  np.testing.assert_array_equal(pixels.mean_to_uint8(mean, grey=True), grey)


def test_make_lr_is_matlab_bicubic_rounded():
  """Against the dense MATLAB weight matrices applied by hand."""
  hr = pixels.crop_to_scale(photo(43, 37), 4)
  assert hr.shape == (40, 36, 3)
  rows = imresize.resize_matrix(40, 10, 0.25)
  cols = imresize.resize_matrix(36, 9, 0.25)
  want = np.einsum('oh,hwc->owc', rows, hr / 255.0)
  want = np.einsum('pw,owc->opc', cols, want)
  want = np.clip(np.round(np.clip(want, 0, 1) * 255), 0, 255)
  np.testing.assert_array_equal(pixels.make_lr(hr, 4), want)


def test_training_pair_on_device_matches_numpy():
  hr = np.stack([photo(32, 32, s) for s in range(3)])
  lr, target = jax.jit(lambda h: pixels.training_pair(h, 4, xp=jnp))(
      jnp.asarray(hr))
  assert lr.shape == (3, 8, 8, 3) and target.shape == (3, 32, 32, 3)
  assert lr.dtype == target.dtype == jnp.float32
  want = np.stack([pixels.make_lr(h, 4) for h in hr]) / 255.0
  # float32 on the device vs float64 here: a level apart at most, rarely.
  diff = np.abs(np.asarray(lr) - want) * 255
  assert diff.max() <= 1.0 + 1e-4 and (diff > 0.5).mean() < 0.01
  np.testing.assert_allclose(np.asarray(lr) * 255,
                             np.round(np.asarray(lr) * 255), atol=1e-3)
  raw, _ = pixels.training_pair(jnp.asarray(hr), 4, round_lr=False, xp=jnp)
  assert not np.allclose(np.asarray(raw) * 255,
                         np.round(np.asarray(raw) * 255), atol=1e-3)
  np.testing.assert_allclose(np.asarray(target), hr / 127.5 - 1, atol=1e-6)


def test_bicubic_upscaling_keeps_a_constant_image():
  lr = np.full((5, 6, 3), 77, np.uint8)
  up = pixels.upscale_bicubic(lr, 4)
  assert up.shape == (20, 24, 3) and (up == 77).all()


def test_sizes():
  with pytest.raises(ValueError, match='smaller than the scale'):
    pixels.crop_to_scale(photo(3, 10), 4)
  pixels.require_size((40, 50, 3), 40, 'a.png', 'x')
  with pytest.raises(UserError, match=r'^a.png: image is 50x30, smaller '
                     r'than the 32px crop$'):
    pixels.require_size((30, 50, 3), 32, 'a.png', 'the 32px crop')
