"""SRResNet (Ledig et al. 2017) with a mean head and a log-variance head.

Architecture as in section IV-B of the GRAM paper: a 9x9 first convolution,
``num_blocks`` residual blocks of two 3x3 convolutions at ``channels``
channels, a 3x3 convolution closing a long skip connection, conv +
pixel-shuffle upsampling (two x2 stages for x4, one stage for x2 or x3), and
the last 9x9 convolution duplicated into a mean head and a log-variance head.

Input: LR image, NHWC, float in [0, 1]. Output: ``(mean, log_var)``, both of
shape (N, H*scale, W*scale, C); ``mean`` in the HR range [-1, 1] and
``log_var`` = log sigma^2 with sigma in those units.

Why Flax NNX: it is what Flax recommends for new code, and modules are plain
Python objects whose construction (``nnx.Rngs`` seeds) is explicit. We use it
functionally: ``nnx.split`` once into a static graph definition and pytrees
of parameters and batch statistics, then a pure jitted step over those
pytrees calls ``nnx.merge`` (a trace-time operation, no runtime cost).

Initialisation, chosen so that training is stable from step 0 (an unscaled
16-block residual trunk with a free log-variance head gives a first NLL near
6e7): He-normal for convolutions followed by an activation, the second
convolution of each residual block scaled by ``residual_init_scale`` (or the
second BatchNorm's scale set to it) so the trunk starts close to identity,
and the log-variance head starting at the constant ``log_var_init`` (zero
kernel), so the first NLL is about half the first MSE.

Each convolution that feeds a pixel shuffle starts with ICNR (Aitken et al.
2017, "Checkerboard artifact free sub-pixel convolution"): its r x r
sub-kernels are equal, so right after initialisation the shuffle is a
nearest-neighbour upsampling of one convolution and the output has no
checkerboard (the r-periodic grid that independently drawn sub-kernels
imprint on the mean). Training can grow the sub-kernels apart again: a
short, high-learning-rate run (the demo) does. ``shuffle_blur`` (off in the
paper's model) blurs both outputs by ``period_kernel(scale)`` ([1, 2, 2, 2,
1] / 8 at x4), which removes any pattern of the shuffles' periods from flat
regions whatever the weights (Sugawara et al. 2019): in a flat region every
layer after a shuffle is shift-invariant, so the pattern keeps its period
up to the outputs (docs/training.md, "The demo's pictures").
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

UPSAMPLE_STAGES = {2: (2,), 3: (3,), 4: (2, 2), 8: (2, 2, 2)}
ACTIVATIONS = ('leaky_relu', 'prelu')    # The paper's, the official code's.
MEAN_ACTIVATIONS = ('none', 'tanh')      # tanh: the official code's.


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
  """(N, H, W, C*r*r) -> (N, H*r, W*r, C), channel index (i*r + j)*C + c."""
  n, h, w, c = x.shape
  out_c = c // (factor * factor)
  x = x.reshape(n, h, w, factor, factor, out_c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * factor, w * factor, out_c)


def period_kernel(period: int) -> tuple[float, ...]:
  """The shortest symmetric blur whose response is zero at every frequency
  k / period: a box of ``period`` taps, convolved with [1, 1] / 2 when
  ``period`` is even (no half-pixel shift). 2 -> [1, 2, 1] / 4."""
  taps = [1.0] * period
  if period % 2 == 0:
    taps = [a + b for a, b in zip(taps + [0.0], [0.0] + taps)]
  return tuple(t / sum(taps) for t in taps)


def _band(n: int, taps: tuple[float, ...]) -> np.ndarray:
  """(n, n) matrix of a symmetric blur along one axis, edges replicated:
  row i holds ``taps[a]`` at column clip(i + a - len(taps) // 2, 0, n-1)."""
  half = len(taps) // 2
  band = np.zeros((n, n), np.float32)
  for i in range(n):
    for a, t in enumerate(taps):
      band[i, min(max(i + a - half, 0), n - 1)] += t
  return band


def period_blur(x: jax.Array, period: int) -> jax.Array:
  """(N, H, W, C) -> same shape, separably blurred by
  ``period_kernel(period)`` with the edges replicated: no pattern that
  repeats every ``period`` pixels survives in flat regions (Sugawara et al.
  2019, "Super-resolution using convolutional neural networks without any
  checkerboard artifacts"). Two band-matrix products (XLA:CPU runs them
  several times faster than shifted copies)."""
  taps = period_kernel(period)
  h, w = x.shape[1:3]
  dot = dict(precision=jax.lax.Precision.HIGHEST)
  x = jnp.einsum('ih,nhwc->niwc', _band(h, taps).astype(x.dtype), x, **dot)
  return jnp.einsum('jw,niwc->nijc', _band(w, taps).astype(x.dtype), x,
                    **dot)


def _he_init(scale: float = 1.0):
  return jax.nn.initializers.variance_scaling(2.0 * scale * scale, 'fan_in',
                                              'truncated_normal')


def icnr_init(init, factor: int):
  """ICNR: wraps a kernel initialiser for a conv feeding ``pixel_shuffle``.

  Draws a (kh, kw, cin, cout / factor**2) kernel with ``init`` and repeats
  it for the factor**2 sub-pixel positions, in ``pixel_shuffle``'s channel
  order (i*r + j)*C + c, so every r x r output block starts constant.
  ``init`` sees the sub-kernel's shape, whose fan-in is the conv's.
  """
  groups = factor * factor

  def init_fn(key, shape, dtype=jnp.float32):
    *spatial, cin, cout = shape
    if cout % groups:
      raise ValueError(f'ICNR: {cout} output channels are not a multiple '
                       f'of {factor}x{factor}')
    base = init(key, (*spatial, cin, cout // groups), dtype)
    return jnp.tile(base, (1,) * (len(shape) - 1) + (groups,))

  return init_fn


class Activation(nnx.Module):
  """LeakyReLU (paper) or PReLU (official code, one learned slope)."""

  def __init__(self, activation: str, leaky_slope: float):
    self.kind = kind = activation
    self.leaky_slope = leaky_slope
    if kind == 'prelu':
      self.prelu = nnx.PReLU(negative_slope_init=0.25)
    elif kind != 'leaky_relu':
      raise ValueError(f'activation must be one of {ACTIVATIONS}, got '
                       f'{kind!r}')

  def __call__(self, x):
    if self.kind == 'prelu':
      return self.prelu(x)
    return jax.nn.leaky_relu(x, self.leaky_slope)


class ConvNorm(nnx.Module):
  """Convolution, optionally followed by BatchNorm."""

  def __init__(self, cin: int, cout: int, kernel: int, *, batch_norm: bool,
               rngs: nnx.Rngs, kernel_init=None, bn_scale_init: float = 1.0,
               dtype=None):
    self.conv = nnx.Conv(
        cin, cout, (kernel, kernel), use_bias=not batch_norm,
        kernel_init=kernel_init or _he_init(), dtype=dtype, rngs=rngs)
    self.bn = nnx.BatchNorm(
        cout, momentum=0.99, epsilon=1e-3, dtype=dtype,
        scale_init=jax.nn.initializers.constant(bn_scale_init),
        rngs=rngs) if batch_norm else None

  def __call__(self, x, train: bool):
    x = self.conv(x)
    if self.bn is not None:
      x = self.bn(x, use_running_average=not train)
    return x


class ResidualBlock(nnx.Module):

  def __init__(self, channels: int, *, activation: str, leaky_slope: float,
               batch_norm: bool, residual_init_scale: float, rngs: nnx.Rngs,
               dtype=None):
    self.conv1 = ConvNorm(channels, channels, 3, batch_norm=batch_norm,
                          rngs=rngs, dtype=dtype)
    self.act = Activation(activation, leaky_slope)
    scale = residual_init_scale
    self.conv2 = ConvNorm(
        channels, channels, 3, batch_norm=batch_norm, rngs=rngs, dtype=dtype,
        kernel_init=_he_init(1.0 if batch_norm else scale),
        bn_scale_init=scale)

  def __call__(self, x, train: bool):
    y = self.act(self.conv1(x, train))
    return x + self.conv2(y, train)


class SRResNet(nnx.Module):
  """SRResNet with mean and log-variance heads (GRAM paper, Fig. 2).

  ``icnr``: initialise the convolutions before each pixel shuffle with
  ``icnr_init`` (default; False draws every sub-kernel independently).
  ``shuffle_blur``: ``period_blur`` of both outputs with the scale's period,
  so that no trained weights can put a pattern of the shuffles' periods on
  a flat region (not in the paper; off by default).
  ``log_var_stop_gradient``: the log-variance head reads
  ``stop_gradient`` of the features, so only the mean trains the trunk
  (Stirn et al. 2023's "faithful" heteroscedastic regression).
  """

  def __init__(self, *, scale: int = 4, num_blocks: int = 16,
               channels: int = 64, in_channels: int = 3,
               out_channels: int = 3, activation: str = 'leaky_relu',
               leaky_slope: float = 0.2, batch_norm: bool = False,
               residual_init_scale: float = 0.1, log_var_init: float = 0.0,
               head_kernel: int = 9, first_kernel: int = 9,
               mean_activation: str = 'none', icnr: bool = True,
               shuffle_blur: bool = False,
               log_var_stop_gradient: bool = False, dtype: Any = None,
               rngs: nnx.Rngs):
    if scale not in UPSAMPLE_STAGES:
      raise ValueError(f'scale must be one of {sorted(UPSAMPLE_STAGES)}, '
                       f'got {scale!r}')
    if mean_activation not in MEAN_ACTIVATIONS:
      raise ValueError(f'mean_activation must be one of {MEAN_ACTIVATIONS}, '
                       f'got {mean_activation!r}')
    self.scale = scale
    self.mean_activation = mean_activation
    self.shuffle_blur = shuffle_blur
    self.log_var_stop_gradient = log_var_stop_gradient
    act = dict(activation=activation, leaky_slope=leaky_slope)
    self.first = nnx.Conv(in_channels, channels, (first_kernel,) * 2,
                          kernel_init=_he_init(), dtype=dtype, rngs=rngs)
    self.first_act = Activation(**act)
    self.blocks = nnx.List([
        ResidualBlock(channels, batch_norm=batch_norm,
                      residual_init_scale=residual_init_scale, rngs=rngs,
                      dtype=dtype, **act) for _ in range(num_blocks)
    ])
    self.trunk_out = ConvNorm(channels, channels, 3, batch_norm=batch_norm,
                              rngs=rngs, dtype=dtype,
                              kernel_init=_he_init(residual_init_scale),
                              bn_scale_init=residual_init_scale)
    self.up_convs = nnx.List()
    self.up_acts = nnx.List()
    self.factors = UPSAMPLE_STAGES[scale]
    for r in self.factors:
      init = icnr_init(_he_init(), r) if icnr else _he_init()
      self.up_convs.append(nnx.Conv(channels, channels * r * r, (3, 3),
                                    kernel_init=init, dtype=dtype,
                                    rngs=rngs))
      self.up_acts.append(Activation(**act))
    lecun = jax.nn.initializers.lecun_normal()
    self.mean_head = nnx.Conv(channels, out_channels, (head_kernel,) * 2,
                              kernel_init=lecun, dtype=dtype, rngs=rngs)
    self.log_var_head = nnx.Conv(
        channels, out_channels, (head_kernel,) * 2,
        kernel_init=jax.nn.initializers.zeros,
        bias_init=jax.nn.initializers.constant(log_var_init), dtype=dtype,
        rngs=rngs)

  def __call__(self, lr: jax.Array, train: bool = False):
    """lr: (N, h, w, C) in [0, 1] -> (mean, log_var), each (N, h*s, w*s, C)."""
    x = self.first_act(self.first(lr))
    skip = x
    for block in self.blocks:
      x = block(x, train)
    x = self.trunk_out(x, train) + skip
    for conv, act, r in zip(self.up_convs, self.up_acts, self.factors):
      x = act(pixel_shuffle(conv(x), r))
    mean = self.mean_head(x)
    log_var = self.log_var_head(
        jax.lax.stop_gradient(x) if self.log_var_stop_gradient else x)
    if self.shuffle_blur:
      mean, log_var = (period_blur(y, self.scale) for y in (mean, log_var))
    if self.mean_activation == 'tanh':
      mean = jnp.tanh(mean)
    return mean.astype(jnp.float32), log_var.astype(jnp.float32)


def receptive_radius(model_config) -> int:
  """Radius, in LR pixels, of the input region one output pixel depends on
  (rounded up, plus one pixel of margin): the halo that makes tiled
  prediction exact (``gramjax.inference.predictor``)."""
  m = model_config
  radius = m.first_kernel // 2 + 2 * m.num_blocks + 1  # first, blocks, trunk
  resolution = 1
  for r in UPSAMPLE_STAGES[m.scale]:
    radius += 1 / resolution                          # 3x3 conv at this res.
    resolution *= r
  radius += (m.head_kernel // 2) / m.scale            # heads at HR.
  if getattr(m, 'shuffle_blur', False):               # The outputs' blur.
    radius += (len(period_kernel(m.scale)) // 2) / m.scale
  return int(math.ceil(radius)) + 1


def build_model(model_config, seed: int) -> SRResNet:
  """Builds the model named by ``config.model`` (a ConfigDict or dict)."""
  cfg = dict(model_config)
  name = cfg.pop('name', 'srresnet')
  if name != 'srresnet':
    raise ValueError(f"name must be 'srresnet', got {name!r}")
  dtype = cfg.pop('compute_dtype', 'float32')
  cfg['dtype'] = None if dtype == 'float32' else jnp.dtype(dtype)
  return SRResNet(rngs=nnx.Rngs(seed), **cfg)
