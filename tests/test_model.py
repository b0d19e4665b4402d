"""SRResNet with mean and log-variance heads (GRAM paper, section IV-B):
parameter counts derived by hand, output shapes, pixel shuffle layout,
initialisation stability, ICNR and the shuffle blur (no checkerboard),
BatchNorm modes and config-driven construction."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from configs import base as base_config
from gramjax import data as data_lib
from gramjax.core import pixels
from gramjax.models import SRResNet, build_model
from gramjax.models.srresnet import (period_blur, period_kernel,
                                     pixel_shuffle, receptive_radius)


def count(tree) -> int:
  return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def param_count(model) -> int:
  _, params, _ = nnx.split(model, nnx.Param, ...)
  return count(params)


def conv(k, cin, cout, bias=True):
  """Parameters of a k x k convolution cin -> cout."""
  return k * k * cin * cout + (cout if bias else 0)


def tiny(**kw):
  kw.setdefault('num_blocks', 1)
  kw.setdefault('channels', 8)
  kw.setdefault('first_kernel', 3)
  kw.setdefault('head_kernel', 3)
  seed = kw.pop('seed', 0)
  return SRResNet(rngs=nnx.Rngs(seed), **kw)


@pytest.fixture(scope='module')
def paper_model():
  """SRResNet() defaults: the paper configuration."""
  return SRResNet(rngs=nnx.Rngs(0))


@pytest.fixture(scope='module')
def astronaut_batch():
  """Two real 96x96 HR crops -> (LR 24x24 in [0, 1], target in [-1, 1])."""
  path = data_lib.resolve_images('builtin:skimage/astronaut')[0]
  img = data_lib.load_image(path)
  hr = np.stack([img[100:196, 150:246], img[300:396, 200:296]])
  return pixels.training_pair(jnp.asarray(hr), 4, xp=jnp)


# ---------------------------------------------------------------- counts --

PAPER_PARAMS = (
    9 * 9 * 3 * 64 + 64                    # first conv, 9x9, 3 -> 64
    + 16 * 2 * (3 * 3 * 64 * 64 + 64)      # 16 blocks of two 3x3 64 -> 64
    + (3 * 3 * 64 * 64 + 64)               # 3x3 conv closing the long skip
    + 2 * (3 * 3 * 64 * 256 + 256)         # two x2 stages: 3x3 64 -> 4*64
    + 2 * (9 * 9 * 64 * 3 + 3)             # 9x9 mean head and log-var head
)


def test_paper_param_count_matches_hand_count(paper_model):
  assert PAPER_PARAMS == 1_560_774
  assert param_count(paper_model) == PAPER_PARAMS
  # No BatchNorm statistics in the paper model.
  _, stats, _ = nnx.split(paper_model, nnx.BatchStat, ...)
  assert count(stats) == 0


def test_batchnorm_prelu_param_count_matches_hand_count():
  model = SRResNet(batch_norm=True, activation='prelu', rngs=nnx.Rngs(0))
  bn_conv = 3 * 3 * 64 * 64 + 2 * 64      # conv without bias + BN scale, bias
  expected = (
      conv(9, 3, 64)                      # first conv (no BN, has a bias)
      + 16 * 2 * bn_conv                  # two conv+BN per residual block
      + bn_conv                           # trunk-closing conv + BN
      + 2 * conv(3, 64, 256)              # upsampling convs (no BN)
      + 2 * conv(9, 64, 3)                # two heads
      # PReLU: one scalar slope per Activation instance: after the first
      # conv, one inside each of the 16 blocks, one per upsampling stage.
      + (1 + 16 + 2))
  assert expected == 1_562_905
  assert param_count(model) == expected
  # Running mean and variance, 64 channels each, for all 33 BatchNorms.
  _, stats, _ = nnx.split(model, nnx.BatchStat, ...)
  assert count(stats) == (16 * 2 + 1) * 2 * 64
  # All 19 PReLU slopes are scalars initialised at 0.25.
  slopes = [model.first_act.prelu.negative_slope[...]]
  slopes += [b.act.prelu.negative_slope[...] for b in model.blocks]
  slopes += [a.prelu.negative_slope[...] for a in model.up_acts]
  assert len(slopes) == 19
  for s in slopes:
    assert np.shape(s) == () and float(s) == pytest.approx(0.25)


# ---------------------------------------------------------------- shapes --

@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_output_shapes(scale):
  model = tiny(scale=scale)
  lr = jax.random.uniform(jax.random.key(1), (2, 5, 7, 3))
  mean, log_var = model(lr)
  assert mean.shape == (2, 5 * scale, 7 * scale, 3)
  assert log_var.shape == (2, 5 * scale, 7 * scale, 3)
  assert mean.dtype == jnp.float32 and log_var.dtype == jnp.float32
  assert np.all(np.isfinite(mean))


@pytest.mark.parametrize('scale', [1, 5, 6])
def test_invalid_scale_raises(scale):
  with pytest.raises(ValueError, match=r'scale must be one of \[2, 3, 4, 8\], '
                     f'got {scale}'):
    tiny(scale=scale)


def test_invalid_mean_activation_raises():
  with pytest.raises(ValueError, match=r"mean_activation must be one of "
                     r"\('none', 'tanh'\), got 'sigmoid'"):
    tiny(mean_activation='sigmoid')


# --------------------------------------------------------- pixel shuffle --

def pixel_shuffle_loops(x, r):
  """Documented layout: channel (i*r + j)*C + c -> pixel (h*r+i, w*r+j), c."""
  n, h, w, cin = x.shape
  c_out = cin // (r * r)
  out = np.zeros((n, h * r, w * r, c_out), x.dtype)
  for b in range(n):
    for hh in range(h):
      for ww in range(w):
        for i in range(r):
          for j in range(r):
            for c in range(c_out):
              out[b, hh * r + i, ww * r + j, c] = x[b, hh, ww,
                                                    (i * r + j) * c_out + c]
  return out


@pytest.mark.parametrize('r,c', [(2, 3), (3, 2), (2, 1)])
def test_pixel_shuffle_layout(r, c):
  x = np.random.default_rng(0).standard_normal(
      (2, 3, 4, c * r * r)).astype(np.float32)
  got = np.asarray(pixel_shuffle(jnp.asarray(x), r))
  np.testing.assert_array_equal(got, pixel_shuffle_loops(x, r))


# -------------------------------------------------------- initialisation --

def trunk_growth(model, lr):
  """std of the residual trunk's output over the std of its input."""
  x0 = model.first_act(model.first(lr))
  x = x0
  for block in model.blocks:
    x = block(x, False)
  return float(jnp.std(x) / jnp.std(x0))


def test_init_is_stable_on_real_images(paper_model, astronaut_batch):
  lr, target = astronaut_batch
  assert lr.shape == (2, 24, 24, 3)
  mean, log_var = paper_model(lr)
  assert mean.shape == target.shape == (2, 96, 96, 3)
  # The log-variance head starts exactly at log_var_init (0.0).
  np.testing.assert_array_equal(np.asarray(log_var), 0.0)
  assert 0.01 < float(jnp.std(mean)) < 2.0
  nll = jnp.mean(0.5 * jnp.exp(-log_var) * (target - mean) ** 2
                 + 0.5 * log_var)
  assert float(nll) < 1.0
  # The 16-block trunk stays close to identity at init.
  assert trunk_growth(paper_model, lr) < 2.0


def test_residual_init_scale_tames_the_trunk(paper_model, astronaut_batch):
  """An unscaled trunk (residual_init_scale=1) explodes across 16 blocks."""
  lr, target = astronaut_batch
  naive = SRResNet(residual_init_scale=1.0, rngs=nnx.Rngs(0))
  ours = trunk_growth(paper_model, lr)
  theirs = trunk_growth(naive, lr)
  assert ours < 2.0
  assert theirs > 100.0
  assert theirs > 50 * ours
  mean, log_var = naive(lr)
  naive_nll = jnp.mean(0.5 * jnp.exp(-log_var) * (target - mean) ** 2
                       + 0.5 * log_var)
  assert float(naive_nll) > 1e3


@pytest.mark.parametrize('log_var_init', [-3.0, 1.5])
def test_log_var_init_is_constant(log_var_init):
  model = tiny(log_var_init=log_var_init)
  lr = jax.random.uniform(jax.random.key(0), (1, 6, 5, 3))
  _, log_var = model(lr)
  np.testing.assert_array_equal(np.asarray(log_var), log_var_init)


# ------------------------------------------------------------------ ICNR --

def block_spread(y, r) -> float:
  """(N, H*r, W*r, C) -> the largest max - min within one r x r block."""
  n, h, w, c = y.shape
  blocks = np.asarray(y).reshape(n, h // r, r, w // r, r, c)
  return float((blocks.max(axis=(2, 4)) - blocks.min(axis=(2, 4))).max())


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_icnr_up_convs_start_without_checkerboard(scale):
  """Right after init, each up-conv's shuffled output is constant within
  every r x r block whatever its input (ICNR); drawn independently, the
  sub-kernels make a checkerboard."""
  for icnr in (True, False):
    model = tiny(scale=scale, icnr=icnr, seed=3)
    keys = jax.random.split(jax.random.key(5), len(model.factors))
    for conv, r, key in zip(model.up_convs, model.factors, keys):
      x = jax.random.normal(key, (2, 5, 6, conv.in_features))
      y = pixel_shuffle(conv(x), r)
      assert y.shape == (2, 5 * r, 6 * r, conv.in_features)
      spread, size = block_spread(y, r), float(jnp.std(y))
      if icnr:
        assert spread <= 1e-6 * size, (r, spread, size)
      else:
        assert spread > 0.5 * size, (r, spread, size)


def test_icnr_kernel_repeats_one_sub_kernel():
  """The kernel is one (3, 3, C, C) draw repeated for the r*r sub-pixel
  positions, channel (i*r + j)*C + c, at He-normal scale (fan-in 9C)."""
  model = SRResNet(rngs=nnx.Rngs(0))
  c = 64
  for conv, r in zip(model.up_convs, model.factors):
    k = np.asarray(conv.kernel[...])
    assert k.shape == (3, 3, c, c * r * r)
    subs = k.reshape(3, 3, c, r * r, c)
    np.testing.assert_array_equal(subs, subs[:, :, :, :1].repeat(r * r, 3))
    assert np.std(k) == pytest.approx(np.sqrt(2 / (9 * c)), rel=0.1)
    np.testing.assert_array_equal(np.asarray(conv.bias[...]), 0.0)


def test_icnr_model_maps_a_flat_image_to_a_flat_mean():
  """A flat LR image: away from the zero-padded borders the initial mean
  is flat with ICNR; without it, it repeats an r-periodic pattern."""
  lr = jnp.full((1, 24, 24, 3), 0.5)
  inner = slice(4 * 8, 4 * 16)            # LR 8..16: > receptive radius.
  for icnr, flat in ((True, True), (False, False)):
    mean, _ = tiny(scale=4, icnr=icnr, seed=1)(lr)
    centre = np.asarray(mean[0, inner, inner])
    spread = float(np.ptp(centre, axis=(0, 1)).max())
    assert (spread < 1e-5) == flat, (icnr, spread)


@pytest.mark.parametrize('period,taps', [(2, (1, 2, 1)), (3, (1, 1, 1)),
                                         (4, (1, 2, 2, 2, 1))])
def test_period_blur_removes_every_periodic_pattern(period, taps):
  """A ramp plus any period x period pattern comes out as the ramp plus
  the pattern's mean, away from the replicated edges."""
  np.testing.assert_allclose(period_kernel(period),
                             np.array(taps) / sum(taps))
  h, w = 4 * period, 5 * period
  yy, xx = np.mgrid[:h, :w].astype(np.float32)
  ramp = 0.1 * yy - 0.05 * xx + 1.0
  tile = np.random.default_rng(period).uniform(-1, 1, (period, period))
  x = ramp + np.tile(tile, (h // period, w // period))
  y = np.asarray(period_blur(jnp.asarray(x, jnp.float32)[None, :, :, None],
                             period))[0, ..., 0]
  e = len(taps) // 2
  np.testing.assert_allclose(y[e:-e, e:-e], (ramp + tile.mean())[e:-e, e:-e],
                             atol=1e-5)
  flat = period_blur(jnp.full((1, 6, 7, 2), 0.7), period)
  np.testing.assert_allclose(np.asarray(flat), 0.7, atol=1e-6)


def test_shuffle_blur_keeps_flat_regions_flat_whatever_the_weights():
  """With ``shuffle_blur`` no sub-kernels, ICNR or not, put a grid on a
  flat image; it adds no parameters."""
  lr = jnp.full((1, 24, 24, 3), 0.5)
  for scale in (3, 4):
    inner = slice(scale * 8, scale * 16)
    model = tiny(scale=scale, icnr=False, shuffle_blur=True, seed=1)
    assert param_count(model) == param_count(tiny(scale=scale, icnr=False))
    mean, _ = model(lr)
    centre = np.asarray(mean[0, inner, inner])
    assert float(np.ptp(centre, axis=(0, 1)).max()) < 1e-5, scale


def test_receptive_radius_counts_the_blur():
  """The outputs' 5-tap blur (x4) reaches 2 HR px = 1/2 LR px further; the
  gradient of an output pixel stays within the radius."""
  cfg = ml_collections.ConfigDict(dict(scale=4, num_blocks=1, channels=8,
                                       first_kernel=3, head_kernel=3))
  assert receptive_radius(cfg) == math.ceil(1 + 2 + 1 + 1 + 0.5 + 0.25) + 1
  cfg.shuffle_blur = True
  radius = receptive_radius(cfg)
  assert radius == math.ceil(1 + 2 + 1 + 1 + 0.5 + 0.25 + 0.5) + 1
  model = build_model(cfg, 0)
  size = 2 * radius + 5
  lr = jax.random.uniform(jax.random.key(2), (size, size, 3))
  y = x = (size // 2) * 4 + 1
  grad = jax.grad(lambda lr: jnp.sum(model(lr[None])[0][0, y, x]))(lr)
  rows, cols = np.nonzero(np.abs(np.asarray(grad)).sum(-1))
  reach = max(np.abs(rows - y // 4).max(), np.abs(cols - x // 4).max())
  assert radius - 2 <= reach <= radius


# ------------------------------------------------------------- BatchNorm --

def test_batchnorm_train_and_eval_modes():
  model = tiny(batch_norm=True, activation='prelu', num_blocks=2)
  lr = jax.random.uniform(jax.random.key(3), (4, 6, 6, 3))

  def stats():
    _, s, _ = nnx.split(model, nnx.BatchStat, ...)
    return [np.array(a) for a in jax.tree.leaves(s)]

  before = stats()
  eval1, _ = model(lr, train=False)
  eval2, _ = model(lr, train=False)
  np.testing.assert_array_equal(eval1, eval2)
  for a, b in zip(before, stats()):
    np.testing.assert_array_equal(a, b)   # eval mode leaves stats alone

  # Independent expectation for the first block's first BN: its input does
  # not go through any BatchNorm, so the batch statistics are computable.
  bn = model.blocks[0].conv1.bn
  h = model.blocks[0].conv1.conv(model.first_act(model.first(lr)))
  batch_mean = np.asarray(jnp.mean(h, axis=(0, 1, 2)))
  batch_var = np.asarray(jnp.var(h, axis=(0, 1, 2)))
  np.testing.assert_array_equal(np.asarray(bn.mean[...]), 0.0)
  np.testing.assert_array_equal(np.asarray(bn.var[...]), 1.0)

  train_out, _ = model(lr, train=True)
  after = stats()
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
  np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.01 * batch_mean,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(bn.var[...]),
                             0.99 + 0.01 * batch_var, rtol=1e-4, atol=1e-6)

  # Train mode normalises with batch statistics, eval mode with the
  # running averages: the outputs differ, and eval moved with the stats.
  assert float(jnp.max(jnp.abs(train_out - eval1))) > 1e-3
  eval3, _ = model(lr, train=False)
  assert float(jnp.max(jnp.abs(eval3 - eval1))) > 1e-5
  assert float(jnp.max(jnp.abs(eval3 - train_out))) > 1e-3


# ---------------------------------------------------------- build_model --

def test_build_model_from_base_config(paper_model):
  cfg = base_config.get_config().model
  a = build_model(cfg, 0)
  b = build_model(cfg, 1)
  assert isinstance(a, SRResNet) and a.scale == 4 and len(a.blocks) == 16
  assert param_count(a) == PAPER_PARAMS
  _, pa, _ = nnx.split(a, nnx.Param, ...)
  _, pb, _ = nnx.split(b, nnx.Param, ...)
  _, p0, _ = nnx.split(paper_model, nnx.Param, ...)
  la, lb, l0 = (jax.tree.leaves(t) for t in (pa, pb, p0))
  # Same seed: identical to the SRResNet() defaults built with seed 0.
  assert len(la) == len(l0)
  for x, y in zip(la, l0):
    np.testing.assert_array_equal(x, y)
  # Different seed: the randomly initialised kernels differ.
  n_differ = sum(not np.array_equal(x, y) for x, y in zip(la, lb))
  assert n_differ >= 16 * 2
  np.testing.assert_raises(AssertionError, np.testing.assert_array_equal,
                           np.asarray(a.first.kernel[...]),
                           np.asarray(b.first.kernel[...]))


def test_build_model_rejects_unknown_name():
  cfg = dict(base_config.get_config().model)
  cfg['name'] = 'edsr'
  with pytest.raises(ValueError, match=r"name must be 'srresnet', got 'edsr'"):
    build_model(cfg, 0)


# ------------------------------------------------------- mean activation --

def test_tanh_mean_activation_bounds_the_mean():
  lr = jax.random.uniform(jax.random.key(4), (2, 6, 6, 3))
  plain, _ = tiny(seed=7)(lr)
  bounded, _ = tiny(seed=7, mean_activation='tanh')(lr)
  # The tiny untrained model's unbounded mean leaves [-1, 1] ...
  assert float(jnp.max(jnp.abs(plain))) > 1.5
  # ... the tanh one does not (kept below saturation, |plain| < 8, so
  # float32 tanh stays strictly inside).
  assert float(jnp.max(jnp.abs(plain))) < 8.0
  assert float(jnp.max(jnp.abs(bounded))) < 1.0
  # Same seed, same parameters: tanh applied to the same pre-activation.
  np.testing.assert_allclose(bounded, jnp.tanh(plain), rtol=1e-5, atol=1e-6)
