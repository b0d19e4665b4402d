"""MATLAB-compatible bicubic imresize against an independent loop-based
transcription of MATLAB's contributions() / imresize algorithm, and the
banded application (NumPy) and jnp under jit against the dense matrices."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gramjax.core import imresize as imr
from gramjax.core import pixels


# ---------------------------------------------------- loop reference --

def ref_cubic(t: float) -> float:
  """Keys cubic, a = -0.5 (MATLAB's imresize 'bicubic' kernel)."""
  a = abs(t)
  if a <= 1:
    return 1.5 * a**3 - 2.5 * a**2 + 1.0
  if a <= 2:
    return -0.5 * a**3 + 2.5 * a**2 - 4.0 * a + 2.0
  return 0.0


def ref_contributions(in_len, out_len, scale):
  """MATLAB contributions(): per output pixel, (0-based indices, weights)."""
  if scale < 1:
    kernel = lambda t: scale * ref_cubic(scale * t)
    width = 4.0 / scale
  else:
    kernel = ref_cubic
    width = 4.0
  aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
  taps = int(math.ceil(width)) + 2
  result = []
  for x in range(1, out_len + 1):                 # 1-based output pixel
    u = x / scale + 0.5 * (1 - 1 / scale)        # 1-based input coordinate
    left = math.floor(u - width / 2)
    idx, wts = [], []
    for p in range(taps):
      i = left + p
      wts.append(kernel(u - i))
      # MATLAB: aux(mod(i - 1, length(aux)) + 1), symmetric padding.
      idx.append(aux[(i - 1) % (2 * in_len)] - 1)
    total = sum(wts)
    result.append((idx, [w / total for w in wts]))
  return result


def ref_imresize(img, scale):
  """Separable resize, rows then columns, with explicit pixel loops."""
  h, w, c = img.shape
  oh, ow = math.ceil(h * scale), math.ceil(w * scale)
  rows = ref_contributions(h, oh, scale)
  cols = ref_contributions(w, ow, scale)
  tmp = np.zeros((oh, w, c))
  for o in range(oh):
    idx, wts = rows[o]
    for q in range(w):
      acc = np.zeros(c)
      for i, wt in zip(idx, wts):
        acc += wt * img[i, q]
      tmp[o, q] = acc
  out = np.zeros((oh, ow, c))
  for o in range(oh):
    for q in range(ow):
      idx, wts = cols[q]
      acc = np.zeros(c)
      for j, wt in zip(idx, wts):
        acc += wt * tmp[o, j]
      out[o, q] = acc
  return out


SCALES = [1 / 4, 1 / 3, 1 / 2, 2, 3, 4]
SIZES = [(17, 23), (3, 5)]


@pytest.fixture(scope='module')
def references():
  rng = np.random.default_rng(0)
  cases = {}
  for size in SIZES:
    img = rng.random(size + (3,))
    for s in SCALES:
      cases[size, s] = (img, ref_imresize(img, s))
  return cases


def test_reference_sanity():
  """The reference itself: hand-checked weights of a x2 upscale."""
  # x2: output pixel 1 maps to u = 0.75; taps at 1-based -2..3, i.e.
  # distances 2.75, 1.75, 0.75, -0.25, -1.25, -2.25.
  idx, wts = ref_contributions(8, 16, 2)[0]
  expected = [0.0, ref_cubic(1.75), ref_cubic(0.75), ref_cubic(0.25),
              ref_cubic(1.25), 0.0]
  np.testing.assert_allclose(wts, np.array(expected) / sum(expected))
  # Mirror: positions -2, -1, 0, 1, 2, 3 -> 3, 2, 1, 1, 2, 3 (1-based).
  assert idx == [2, 1, 0, 0, 1, 2]
  assert ref_cubic(0) == 1 and ref_cubic(1) == 0 and ref_cubic(2) == 0


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('scale', SCALES)
def test_numpy_matches_matlab_reference(references, size, scale):
  img, ref = references[size, scale]
  got = imr.imresize(img, scale)
  assert got.shape == ref.shape
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
  # Borders included: the outermost rows and columns match as well.
  np.testing.assert_allclose(got[[0, -1]], ref[[0, -1]], rtol=0, atol=1e-6)
  np.testing.assert_allclose(got[:, [0, -1]], ref[:, [0, -1]], rtol=0,
                             atol=1e-6)


@pytest.mark.parametrize('scale', SCALES)
def test_jax_jit_matches_matlab_reference(references, scale):
  for size in SIZES:
    img, ref = references[size, scale]
    fn = jax.jit(lambda x, s=scale: imr.imresize(x, s, jnp))
    got = fn(jnp.asarray(img, jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=1e-5)


def test_batched_nhwc_equals_per_image(references):
  imgs = np.stack([references[(17, 23), 0.25][0],
                   references[(17, 23), 0.25][0][::-1]])
  got = imr.imresize(imgs, 1 / 3)
  assert got.shape == (2, 6, 8, 3)
  np.testing.assert_allclose(got[0], ref_imresize(imgs[0], 1 / 3), atol=1e-9)
  np.testing.assert_allclose(got[1], ref_imresize(imgs[1], 1 / 3), atol=1e-9)


# --------------------------------------------------------- known values --

@pytest.mark.parametrize('scale', SCALES)
def test_constant_image_stays_constant(scale):
  img = np.full((17, 23, 3), 0.3725)
  out = imr.imresize(img, scale)
  np.testing.assert_allclose(out, 0.3725, rtol=0, atol=1e-12)


@pytest.mark.parametrize('in_len,scale', [(17, 0.25), (23, 1 / 3), (5, 0.5),
                                          (3, 0.25), (17, 2), (7, 3), (1, 4)])
def test_resize_matrix_rows_sum_to_one(in_len, scale):
  out_len = imr.output_size(in_len, scale)
  m = imr.resize_matrix(in_len, out_len, scale)
  assert m.shape == (out_len, in_len)
  np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_output_size_is_ceil():
  # Hand-computed ceil(in * scale).
  cases = {(17, 1 / 4): 5, (23, 1 / 4): 6, (17, 1 / 3): 6, (23, 1 / 3): 8,
           (17, 1 / 2): 9, (23, 1 / 2): 12, (17, 2): 34, (23, 3): 69,
           (17, 4): 68, (96, 1 / 4): 24, (99, 1 / 3): 33, (3, 1 / 4): 1}
  for (n, s), expected in cases.items():
    assert imr.output_size(n, s) == expected, (n, s)
    assert imr.imresize(np.zeros((n, 2, 1)), s).shape[0] == expected
  # Crops divisible by the scale give exactly crop / scale (no float
  # round-up to one more pixel), for every supported scale.
  for s in (2, 3, 4, 8):
    for k in range(1, 600):
      assert imr.output_size(k * s, 1.0 / s) == k


def test_resize_matrix_rejects_empty():
  with pytest.raises(ValueError):
    imr.resize_matrix(0, 3, 2.0)


# ------------------------------------------------ band against dense --

def dense_resize(x, scale):
  """The dense-matrix product (gramjax at 6d47940): rows, then columns."""
  h, w = x.shape[-3], x.shape[-2]
  rows = imr.resize_matrix(h, imr.output_size(h, scale), scale)
  cols = imr.resize_matrix(w, imr.output_size(w, scale), scale)
  y = np.einsum('oh,...hwc->...owc', rows, x)
  return np.einsum('pw,...owc->...opc', cols, y)


# Odd sizes, several blocks per axis (block_size: 4 to 16 outputs), borders
# where the mirrored taps fold more than once (3 px at x1/4: 16 taps).
BAND_CASES = [((101, 75), 1 / 4), ((97, 131), 1 / 3), ((45, 33), 1 / 2),
              ((3, 5), 1 / 4), ((37, 29), 3), ((19, 23), 4), ((13, 7), 2),
              ((1, 3), 4)]


@pytest.mark.parametrize('size,scale', BAND_CASES)
def test_numpy_band_equals_dense_product(size, scale, monkeypatch):
  x = np.random.default_rng(3).random((2,) + size + (3,)) * 255.0
  want = dense_resize(x, scale)
  got = imr.imresize(x, scale)
  assert got.shape == want.shape and got.dtype == np.float64
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * 255)
  # HWC equals each image of the NHWC batch.
  np.testing.assert_allclose(imr.imresize(x[1], scale), want[1], rtol=0,
                             atol=1e-12 * 255)
  # Products chunked down to single rows / columns (large images' path).
  monkeypatch.setattr(imr, '_CHUNK_WORK', 100)
  np.testing.assert_allclose(imr.imresize(x, scale), want, rtol=0,
                             atol=1e-12 * 255)


@pytest.mark.parametrize('size,scale', BAND_CASES)
def test_jax_equals_dense_product_under_jit(size, scale):
  x = np.random.default_rng(4).random((2,) + size + (3,))
  want = dense_resize(x, scale)
  with jax.enable_x64(True):
    got = jax.jit(lambda a: imr.imresize(a, scale, jnp))(jnp.asarray(x))
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12)
  got32 = jax.jit(lambda a: imr.imresize(a, scale, jnp))(
      jnp.asarray(x, jnp.float32))
  assert got32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got32), want, rtol=0, atol=1e-5)


def test_float32_numpy_stays_float32():
  x = np.random.default_rng(5).random((17, 23, 3))
  got = imr.imresize(x.astype(np.float32), 1 / 4)
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, dense_resize(x, 1 / 4), rtol=0, atol=1e-5)


@pytest.mark.parametrize('in_len,scale,taps', [
    (96, 1 / 4, 16), (768, 1 / 4, 16), (99, 1 / 3, 9), (24, 4, 4),
    (17, 3, 4), (5, 2, 4)])
def test_contributions_is_the_band(in_len, scale, taps):
  """At most 4 / scale taps when downscaling, 4 when upscaling (taps zero
  for every output dropped, as MATLAB does: at x1/3 the kernel's zeros at
  +-3 px fall on input pixels, 9 taps); the dense matrix is the band
  scattered, and the blocks are slices of the dense matrix."""
  out_len = imr.output_size(in_len, scale)
  idx, wts = imr.contributions(in_len, out_len, scale)
  assert idx.shape == wts.shape
  assert idx.shape[1] == taps
  assert idx.min() >= 0 and idx.max() < in_len
  np.testing.assert_allclose(wts.sum(axis=1), 1.0, rtol=0, atol=1e-12)
  dense = np.zeros((out_len, in_len))
  for o in range(out_len):
    for i, wt in zip(idx[o], wts[o]):
      dense[o, i] += wt
  np.testing.assert_array_equal(imr.resize_matrix(in_len, out_len, scale),
                                dense)
  covered = np.zeros(out_len, int)
  for o0, o1, i0, i1, block in imr.blocks(in_len, out_len, scale):
    np.testing.assert_array_equal(block, dense[o0:o1, i0:i1])
    outside = np.delete(dense[o0:o1], np.s_[i0:i1], axis=1)
    assert not outside.any()
    covered[o0:o1] += 1
  assert (covered == 1).all()
  rgb = imr.blocks(in_len, out_len, scale, 3)
  for (o0, o1, i0, i1, block) in rgb:
    np.testing.assert_array_equal(block, np.kron(dense[o0:o1, i0:i1],
                                                 np.eye(3)))


def test_band_matches_matlab_contributions():
  """The band's nonzero weights are the loop reference's, tap by tap."""
  for in_len, scale in ((17, 1 / 4), (23, 1 / 3), (8, 2), (5, 4)):
    out_len = imr.output_size(in_len, scale)
    idx, wts = imr.contributions(in_len, out_len, scale)
    for o, (ridx, rwts) in enumerate(
        ref_contributions(in_len, out_len, scale)):
      ref = {(i, round(w, 12)) for i, w in zip(ridx, rwts) if w != 0}
      got = {(int(i), round(w, 12)) for i, w in zip(idx[o], wts[o])
             if w != 0}
      assert got == ref, (in_len, scale, o)


# ---------------------------------------------------- jax.image.resize --

def test_jax_image_resize_differs_at_borders():
  """jax.image.resize(antialias=True, 'bicubic') uses the same kernel but
  renormalises at the borders instead of mirroring: equal inside, different
  at the edges. This is why gramjax does not use it for MATLAB-style LR."""
  x = np.random.default_rng(1).random((64, 64, 3))
  for scale, out in ((0.25, 16), (2, 128)):
    ours = imr.imresize(x, scale)
    theirs = np.asarray(jax.image.resize(jnp.asarray(x), (out, out, 3),
                                         'bicubic', antialias=True))
    diff = np.abs(ours - theirs)
    assert diff[3:-3, 3:-3].max() < 1e-5
    border = max(diff[0].max(), diff[-1].max(), diff[:, 0].max(),
                 diff[:, -1].max())
    assert border > 1e-3


# ------------------------------------------------------------ make_lr_hr --

def make_lr_hr(hr, scale, round_lr=True):
  """The on-device training pair (was ``train.make_lr_hr``)."""
  return pixels.training_pair(hr, scale, round_lr, jnp)


def test_make_lr_hr():
  rng = np.random.default_rng(2)
  hr = rng.integers(0, 256, (2, 32, 48, 3)).astype(np.uint8)
  hr[0, :, :24] = 0       # a hard edge: bicubic over/undershoots here,
  hr[0, :, 24:] = 255     # so the clip to [0, 1] has something to do.
  lr, target = jax.jit(lambda h: make_lr_hr(h, 4))(jnp.asarray(hr))
  lr_raw, target2 = make_lr_hr(jnp.asarray(hr), 4, round_lr=False)
  lr, lr_raw = np.asarray(lr), np.asarray(lr_raw)
  assert lr.shape == lr_raw.shape == (2, 8, 12, 3)
  assert target.shape == hr.shape
  assert lr.min() >= 0.0 and lr.max() <= 1.0
  assert lr_raw.min() >= 0.0 and lr_raw.max() <= 1.0

  # Independent: MATLAB bicubic of hr / 255, clipped to [0, 1].
  refs = np.stack([ref_imresize(h / 255.0, 0.25) for h in hr])
  assert refs.min() < 0.0 or refs.max() > 1.0   # clipping is exercised
  np.testing.assert_allclose(lr_raw, np.clip(refs, 0, 1), rtol=0, atol=1e-5)

  # round_lr: on 8-bit levels, the nearest level to the unrounded LR.
  levels = lr * 255.0
  np.testing.assert_allclose(levels, np.round(levels), rtol=0, atol=1e-3)
  assert np.abs(lr - lr_raw).max() <= 0.5 / 255 + 1e-6
  assert np.abs(lr - lr_raw).max() > 1e-4    # rounding did happen
  assert not np.allclose(lr_raw * 255, np.round(lr_raw * 255), atol=1e-3)

  expected = hr.astype(np.float64) / 127.5 - 1.0
  np.testing.assert_allclose(np.asarray(target), expected, rtol=0, atol=1e-6)
  # Jitted and eager agree up to float32 rounding, and the target is exactly
  # within [-1, 1] even under jit (XLA multiplies by the reciprocal).
  np.testing.assert_allclose(np.asarray(target), np.asarray(target2),
                             rtol=0, atol=3e-7)
  assert float(np.min(target)) == -1.0 and float(np.min(target2)) == -1.0
  assert float(np.max(target)) == 1.0 and float(np.max(target2)) == 1.0
