"""MATLAB-compatible bicubic resizing as precomputed weight matrices.

``imresize(x, 1/scale, 'bicubic')`` in MATLAB is separable: each output row
(column) is a weighted sum of input rows (columns). We build those weights
once as a dense (out_len, in_len) matrix and apply them with two matmuls, so
one implementation serves NumPy (data preparation, evaluation) and jitted JAX
code (LR patches made on the device from HR crops).

The weights follow MATLAB's ``contributions()``: Keys cubic kernel with
a = -0.5; when downscaling the kernel is widened by 1/scale (antialiasing);
output pixel x (1-based) maps to u = x/scale + 0.5*(1 - 1/scale); border taps
are mirrored (symmetric padding); each row is normalised to sum to one.
"""

from __future__ import annotations

import functools
import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys cubic convolution kernel with a = -0.5."""
  ax = np.abs(x)
  ax2, ax3 = ax * ax, ax * ax * ax
  return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) +
          (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float,
                  antialias: bool = True) -> np.ndarray:
  """(out_len, in_len) float64 matrix of MATLAB bicubic weights."""
  if in_len < 1 or out_len < 1:
    raise ValueError(f'cannot resize length {in_len} to {out_len}')
  width = 4.0
  if scale < 1 and antialias:
    width /= scale
    kernel = lambda t: scale * cubic(scale * t)
  else:
    kernel = cubic
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = np.floor(u - width / 2.0)
  taps = int(math.ceil(width)) + 2
  idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions.
  weights = kernel(u[:, None] - idx)
  weights /= weights.sum(axis=1, keepdims=True)
  # Symmetric (mirror) borders: ... 2 1 | 1 2 ... n | n n-1 ...
  mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
  src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
  matrix = np.zeros((out_len, in_len), np.float64)
  np.add.at(matrix, (np.repeat(np.arange(out_len), taps), src.ravel()),
            weights.ravel())
  return matrix


def output_size(in_len: int, scale: float) -> int:
  return int(math.ceil(in_len * scale))


def imresize(x, scale: float, xp=np):
  """Resizes NHWC or HWC images by ``scale`` like MATLAB's bicubic imresize.

  ``x`` is float (any range; the result is not clipped). ``xp`` is ``numpy``
  or ``jax.numpy``; with ``jax.numpy`` the function is jit-compatible (the
  weight matrices are constants for static shapes).
  """
  h, w = x.shape[-3], x.shape[-2]
  rows = resize_matrix(h, output_size(h, scale), scale)
  cols = resize_matrix(w, output_size(w, scale), scale)
  dtype = x.dtype
  rows = xp.asarray(rows, dtype=dtype)
  cols = xp.asarray(cols, dtype=dtype)
  y = xp.einsum('oh,...hwc->...owc', rows, x)
  return xp.einsum('pw,...owc->...opc', cols, y)
