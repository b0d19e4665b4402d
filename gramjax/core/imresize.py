"""MATLAB-compatible bicubic resizing, applied over the weights' band.

``imresize(x, 1/scale, 'bicubic')`` in MATLAB is separable: each output row
(column) is a weighted sum of a few input rows (columns). ``contributions``
holds those weights once, as MATLAB does: per output pixel, ``taps`` input
indices and weights (about 4 / scale taps when downscaling, 4 when
upscaling). Everything else derives from it:

* ``resize_matrix``: the dense (out_len, in_len) matrix (reference, tests);
* NumPy (evaluation, data preparation): the band cut into blocks of
  consecutive outputs, each a small dense matrix over the contiguous input
  range it reads, applied by BLAS (``np.matmul``);
* ``jax.numpy`` (jitted training batches, (16, 96, 96, 3) crops): the dense
  matrices, in full float32. Measured on the 2-core CPU, the LR of such a
  batch takes 1.0-1.4 ms this way, 1.3-2.5 ms by one gather per tap and a
  weighted sum, 3-7 ms by strided slices of a mirror-padded batch.

The weights follow MATLAB's ``contributions()``: Keys cubic kernel with
a = -0.5; when downscaling the kernel is widened by 1/scale (antialiasing);
output pixel x (1-based) maps to u = x/scale + 0.5*(1 - 1/scale); border taps
are mirrored (symmetric padding); each row is normalised to sum to one; taps
whose weight is zero for every output are dropped.
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


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
  for a in arrays:
    a.setflags(write=False)       # Cached: shared by every caller.
  return arrays


@functools.lru_cache(maxsize=64)
def contributions(in_len: int, out_len: int, scale: float,
                  antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """MATLAB's bicubic weights as a band.

  Returns ``(indices, weights)``, both (out_len, taps): 0-based input
  indices (int64, mirrored into [0, in_len); a row may repeat one near the
  borders) and float64 weights, each row summing to one. Read-only (cached).
  """
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
  indices = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
  used = np.any(weights != 0, axis=0)
  return _read_only(np.ascontiguousarray(indices[:, used]),
                    np.ascontiguousarray(weights[:, used]))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float,
                  antialias: bool = True) -> np.ndarray:
  """(out_len, in_len) float64 dense matrix of ``contributions``."""
  indices, weights = contributions(in_len, out_len, scale, antialias)
  matrix = np.zeros((out_len, in_len), np.float64)
  rows = np.repeat(np.arange(out_len), indices.shape[1])
  np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
  return _read_only(matrix)[0]


def output_size(in_len: int, scale: float) -> int:
  return int(math.ceil(in_len * scale))


def block_size(scale: float) -> int:
  """Outputs per dense block: 8 at x1/4 (44 input px), 16 at x4 (8 px). Wider
  blocks read more of the zeros around the band; narrower ones reuse less
  of what they read (measured on 1024x768 RGB)."""
  return max(4, min(16, round(32 * scale)))


@functools.lru_cache(maxsize=64)
def blocks(in_len: int, out_len: int, scale: float, channels: int = 1,
           antialias: bool = True) -> tuple[tuple[int, int, int, int,
                                                  np.ndarray], ...]:
  """The band as dense blocks ``(o0, o1, i0, i1, block)``.

  Outputs ``o0:o1`` are ``block @ input[i0:i1]``: ``block`` is
  ``resize_matrix[o0:o1, i0:i1]`` (the mirrored indices of consecutive
  outputs span a contiguous range). With ``channels`` > 1 the block acts on
  interleaved (length, channels) rows flattened to length * channels:
  ``kron(block, eye(channels))``, shape ((o1-o0)*C, (i1-i0)*C). Read-only.
  """
  indices, _ = contributions(in_len, out_len, scale, antialias)
  matrix = resize_matrix(in_len, out_len, scale, antialias)
  b = block_size(out_len / in_len)
  out = []
  for o0 in range(0, out_len, b):
    o1 = min(o0 + b, out_len)
    i0, i1 = int(indices[o0:o1].min()), int(indices[o0:o1].max()) + 1
    block = matrix[o0:o1, i0:i1]
    if channels > 1:
      block = np.kron(block, np.eye(channels))
    out.append((o0, o1, i0, i1, _read_only(np.ascontiguousarray(block))[0]))
  return tuple(out)


# OpenBLAS computes a product of M * N * K <= 2**18 multiply-adds on the
# calling thread. Chunked to that size, the band's products never wait for a
# hand-off to a BLAS thread, which on a busy 2-core machine cost more than
# the products (medians of a 1024x768 x1/4 resize: 9-16 ms chunked, 60-370 ms
# not); with both cores idle the second thread saved at most 2 ms.
_CHUNK_WORK = 1 << 18


def _resize_rows_numpy(x: np.ndarray, out_len: int, scale: float
                       ) -> np.ndarray:
  """(..., H, W, C) -> (..., out_len, W, C): per block and chunk of columns,
  one BLAS product (block_out, span) @ (span, columns)."""
  *lead, h, w, c = x.shape
  flat = x.reshape(*lead, h, w * c)
  y = np.empty((*lead, out_len, w * c), x.dtype)
  for o0, o1, i0, i1, block in blocks(h, out_len, scale):
    block = block.astype(x.dtype, copy=False)
    step = max(1, _CHUNK_WORK // block.size)
    for j in range(0, w * c, step):
      np.matmul(block, flat[..., i0:i1, j:j + step],
                out=y[..., o0:o1, j:j + step])
  return y.reshape(*lead, out_len, w, c)


def _resize_cols_numpy(x: np.ndarray, out_len: int, scale: float
                       ) -> np.ndarray:
  """(..., H, W, C) -> (..., H, out_len, C): per block and chunk of rows,
  one BLAS product (rows, span * C) @ (span * C, block_out * C); the
  channels stay interleaved (no transposes)."""
  *lead, h, w, c = x.shape
  flat = x.reshape(-1, w * c)
  y = np.empty((flat.shape[0], out_len * c), x.dtype)
  for o0, o1, i0, i1, block in blocks(w, out_len, scale, c):
    block = block.T.astype(x.dtype, copy=False)
    step = max(1, _CHUNK_WORK // block.size)
    for j in range(0, flat.shape[0], step):
      np.matmul(flat[j:j + step, i0 * c:i1 * c], block,
                out=y[j:j + step, o0 * c:o1 * c])
  return y.reshape(*lead, h, out_len, c)


def _resize_axis_dense(x, axis: int, out_len: int, scale: float, xp):
  """Resizes ``axis`` (-3 or -2) by one product with the dense matrix, in
  full float32 (``precision='highest'``: no TF32 on GPUs, no bfloat16 passes
  on TPUs, which would move LR pixels to other 8-bit levels)."""
  matrix = xp.asarray(resize_matrix(x.shape[axis], out_len, scale),
                      dtype=x.dtype)
  spec = ('oh,...hwc->...owc' if axis == -3 else 'ow,...hwc->...hoc')
  return xp.einsum(spec, matrix, x, precision='highest')


def imresize(x, scale: float, xp=np):
  """Resizes NHWC or HWC images by ``scale`` like MATLAB's bicubic imresize.

  ``x``: (..., H, W, C) float, any range (the result is not clipped); out:
  (..., ceil(H * scale), ceil(W * scale), C), same dtype (integers become
  float64 in NumPy, float32 in JAX). ``xp`` is ``numpy`` (BLAS products over
  the band's blocks) or ``jax.numpy`` (jit-compatible: dense-matrix
  products, constants for static shapes). Rows and columns are resized in
  the order that shrinks the data first.
  """
  h, w = x.shape[-3], x.shape[-2]
  oh, ow = output_size(h, scale), output_size(w, scale)
  if xp is np:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
      x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    rows = lambda a: _resize_rows_numpy(a, oh, scale)
    cols = lambda a: _resize_cols_numpy(a, ow, scale)
  else:
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
      x = x.astype(xp.float32)
    rows = lambda a: _resize_axis_dense(a, -3, oh, scale, xp)
    cols = lambda a: _resize_axis_dense(a, -2, ow, scale, xp)
  return cols(rows(x)) if scale <= 1 else rows(cols(x))
