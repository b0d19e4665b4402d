"""Pixel conventions: one home for ranges, units and making LR images.

Ranges used across gramjax:

* image files, metrics and pictures: uint8 levels in [0, 255] ("grey
  levels");
* the model's LR input: float in [0, 1];
* the model's target, its mean ``mu`` and sigma: [-1, 1] units,
  ``x = grey / 127.5 - 1`` (so sigma in grey levels is ``127.5 * sigma``);
  ``log_var = log sigma^2`` in those units.

LR images are made the way SR benchmarks make them (MATLAB
``imresize(hr, 1/scale, 'bicubic')``, rounded to 8-bit levels), by one
function for NumPy (evaluation, prediction) and ``jax.numpy`` (training
batches on the device).
"""

from __future__ import annotations

import numpy as np

from gramjax.core import imresize
from gramjax.core import colour
from gramjax.core.errors import UserError

GREY_PER_UNIT = 127.5    # Grey levels per [-1, 1] unit.


def to_uint8(x) -> np.ndarray:
  """Rounds [0, 255] floats to uint8 levels (clipped; NaN, a diverged
  model's output, becomes 0, as the bare cast gave but with a warning)."""
  x = np.nan_to_num(np.round(x), nan=0.0, posinf=255.0, neginf=0.0)
  return np.clip(x, 0, 255).astype(np.uint8)


def to_signed(hr, xp=np):
  """uint8-range HR -> the [-1, 1] target (float32 for jnp, float64 NumPy)."""
  hr = _float(hr, xp)
  # XLA turns / 127.5 into a multiply by its reciprocal (255 -> 1 + 1e-7):
  # clip so the target is exactly in [-1, 1].
  return xp.clip(hr / GREY_PER_UNIT - 1.0, -1.0, 1.0)


def mean_to_grey(mean) -> np.ndarray:
  """Predicted mean in [-1, 1] -> float64 grey levels [0, 255] (unclipped)."""
  return (np.asarray(mean, np.float64) + 1.0) * GREY_PER_UNIT


def mean_to_uint8(mean, grey: bool = False) -> np.ndarray:
  """Predicted mean (H, W, 3) in [-1, 1] -> uint8 RGB image; with ``grey``
  its luma (H, W) (``colour.rgb_to_grey``), for greyscale inputs."""
  rgb = mean_to_grey(mean)
  return to_uint8(colour.rgb_to_grey(rgb) if grey else rgb)


def sigma_grey(log_var) -> np.ndarray:
  """(..., C) log-variance in [-1, 1] units -> (...) sigma in grey levels,
  the root of the channel-mean variance (what uncertainty maps show)."""
  var = np.exp(np.asarray(log_var, np.float64)).mean(axis=-1)
  return np.sqrt(var) * GREY_PER_UNIT


def crop_to_scale(hr: np.ndarray, scale: int) -> np.ndarray:
  """Crops (H, W, C) to the largest multiple of ``scale`` (top-left kept)."""
  h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
  if not h or not w:
    raise ValueError(f'image {hr.shape[:2]} is smaller than the scale '
                     f'{scale}')
  return hr[:h, :w]


def require_size(shape, min_size: int, where, why: str) -> None:
  """``UserError`` '<where>: image is WxH, smaller than <why>' when the
  shorter side of ``shape`` (H, W, ...) is under ``min_size``."""
  if min(shape[:2]) < min_size:
    raise UserError(f'{where}: image is {shape[1]}x{shape[0]}, smaller than '
                    f'{why}')


def _float(x, xp):
  return xp.asarray(x).astype(np.float64 if xp is np else xp.float32)


def downscale(hr, scale: int, xp=np, round_levels: bool = True):
  """uint8-range HR (..., H, W, C) -> LR in [0, 1] (..., H/s, W/s, C) by
  MATLAB bicubic ``imresize(hr / 255, 1 / scale)``, clipped, and rounded to
  8-bit levels when ``round_levels`` (as a saved LR file is). ``xp`` is
  ``numpy`` (float64) or ``jax.numpy`` (float32, jit-compatible)."""
  lr = xp.clip(imresize.imresize(_float(hr, xp) / 255.0, 1.0 / scale, xp),
               0.0, 1.0)
  if round_levels:
    lr = xp.round(lr * 255.0) / 255.0
  return lr


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
  """uint8 HR (H, W, 3) -> uint8 LR (H/s, W/s, 3), the benchmarks' LR."""
  return to_uint8(downscale(hr, scale) * 255.0)


def training_pair(hr, scale: int, round_lr: bool = True, xp=np):
  """uint8 HR crops (N, H, W, C) -> (LR input in [0, 1] (N, H/s, W/s, C),
  target in [-1, 1] (N, H, W, C)), section IV-B of the paper."""
  return downscale(hr, scale, xp, round_lr), to_signed(hr, xp)


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
  """uint8 LR -> uint8 bicubic upscaling by MATLAB imresize (the baseline)."""
  return to_uint8(imresize.imresize(lr / 255.0, scale) * 255.0)
