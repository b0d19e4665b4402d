"""Image-quality metrics (numpy, on uint8-range images).

PSNR and SSIM as the super-resolution literature reports them, in two named
conventions (``CONVENTIONS``):

``standard`` (the MATLAB evaluation scripts of EDSR / RCAN and the
numbers of the GRAM paper's Table I): the BT.601 luma channel ``Y = 16 +
65.481 R + 128.553 G + 24.966 B`` (RGB in [0, 1], Y in [16, 235]) rounded
to integer levels, as MATLAB's ``rgb2ycbcr`` returns it for uint8 images;
``scale`` pixels shaved from every border; SSIM of Wang et al. (2004) with
an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255,
'valid' filtering (no padding) and the mean of the SSIM map. (The rounding
matters at the 0.01 dB level: bicubic x4 on Set5 gives 28.42 dB with it
and 28.43 dB with float Y, which is what BasicSR's Python code computes.)

``official_code`` (the official GRAM Keras code's evaluation): float Y (not
rounded), 10 pixels shaved, and scikit-image's default SSIM: a 7x7 uniform
window with the sample covariance (N / (N - 1)), same constants.

Greyscale images: an image whose *file* is greyscale (PIL mode 'L', 'LA',
'I;16', ...; Set14's bridge.png) is measured on its own grey values, not on
the Y of its replicated channels (Y of grey g is 16 + 219 g / 255, which
shrinks every error by 219/255 and raises PSNR by 1.32 dB). The decision is
made from the file mode (``is_greyscale_file``), never from content: an RGB
file whose channels happen to be equal (Set14's man.png) is measured on Y,
exactly as MATLAB's ``size(im, 3) == 3`` test does. A 3-channel prediction
for a greyscale image is reduced to grey with the luma weights
(``rgb_to_grey``), which returns g exactly when all channels equal g.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from gramjax.core.colour import GREY_MODES, LUMA, LUMA_255  # noqa: F401
from gramjax.core.colour import is_greyscale_file, rgb_to_grey, rgb_to_y


def _shave(x: np.ndarray, shave: int) -> np.ndarray:
  if shave < 0:
    raise ValueError(f'shave must be >= 0, got {shave}')
  if not shave:
    return x
  if min(x.shape[:2]) <= 2 * shave:
    raise ValueError(f'cannot shave {shave} px from an image of shape '
                     f'{x.shape}')
  return x[shave:-shave, shave:-shave]


def psnr(a: np.ndarray, b: np.ndarray, *, shave: int = 0,
         peak: float = 255.0) -> float:
  """PSNR in dB between two images of one shape (H, W[, C]) in [0, peak],
  after removing ``shave`` pixels from every border."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f'shape mismatch {a.shape} vs {b.shape}')
  a, b = _shave(a, shave), _shave(b, shave)
  mse = np.mean((a - b) ** 2)
  return float('inf') if mse == 0 else float(10 * np.log10(peak**2 / mse))


# ------------------------------------------------------------------ SSIM --

@dataclasses.dataclass(frozen=True)
class SsimWindow:
  """An SSIM window: separable 1-D taps and the covariance normalisation."""
  name: str
  taps: np.ndarray            # 1-D, sums to one; the window is outer(t, t).
  sample_covariance: bool     # Scale (co)variances by N / (N - 1).

  @property
  def size(self) -> int:
    return len(self.taps)


def gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  """MATLAB fspecial('gaussian', size, sigma) factor (normalised 1-D)."""
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(x * x) / (2.0 * sigma * sigma))
  return g / g.sum()


SSIM_WINDOWS = {
    # Wang et al. 2004 / MATLAB ssim / BasicSR calculate_ssim.
    'gaussian11': SsimWindow('11x11 Gaussian (sigma 1.5)', gaussian_taps(),
                             sample_covariance=False),
    # skimage.metrics.structural_similarity defaults (official GRAM code).
    'uniform7': SsimWindow('7x7 uniform, sample covariance',
                           np.full(7, 1.0 / 7.0), sample_covariance=True),
}


def _filter_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
  """Separable 'valid' correlation of (H, W) with outer(taps, taps):
  ``out[i, j] = sum_{u,v} taps[u] taps[v] x[i+u, j+v]``, (H-k+1, W-k+1).
  scipy's C loops (one pass per axis); the borders it pads are cut off."""
  k = len(taps)
  if k % 2 != 1:
    raise ValueError(f'SSIM windows have an odd size, got {k}')
  cut = slice(k // 2, -(k // 2) or None)
  rows = ndimage.correlate1d(x, taps, axis=0, mode='constant')[cut]
  return ndimage.correlate1d(rows, taps, axis=1, mode='constant')[:, cut]


def ssim_map(a: np.ndarray, b: np.ndarray, *, window: str = 'gaussian11',
             data_range: float = 255.0, k1: float = 0.01,
             k2: float = 0.03) -> np.ndarray:
  """SSIM map of two (H, W) images, 'valid' part only: (H-k+1, W-k+1)."""
  win = SSIM_WINDOWS[window]
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 2:
    raise ValueError(f'ssim needs two (H, W) images of one shape, got '
                     f'{a.shape} and {b.shape}')
  if min(a.shape) < win.size:
    raise ValueError(f'image {a.shape} is smaller than the {win.name} SSIM '
                     'window')
  f = lambda x: _filter_valid(x, win.taps)
  mu_a, mu_b = f(a), f(b)
  n = win.size * win.size
  norm = n / (n - 1.0) if win.sample_covariance else 1.0
  var_a = norm * (f(a * a) - mu_a * mu_a)
  var_b = norm * (f(b * b) - mu_b * mu_b)
  cov = norm * (f(a * b) - mu_a * mu_b)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  return ((2 * mu_a * mu_b + c1) * (2 * cov + c2) /
          ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)))


def ssim(a: np.ndarray, b: np.ndarray, *, shave: int = 0,
         convention: str = 'standard', data_range: float = 255.0) -> float:
  """Mean SSIM of two single-channel (H, W) images in [0, 255] after
  shaving ``shave`` px; ``convention`` picks the window ('standard':
  11x11 Gaussian; 'official_code': 7x7 uniform with sample covariance) and
  may also be a key of ``SSIM_WINDOWS``."""
  window = (CONVENTIONS[convention].ssim_window if convention in CONVENTIONS
            else convention)
  if window not in SSIM_WINDOWS:
    raise ValueError(f'unknown SSIM convention {convention!r}; use one of '
                     f'{sorted(CONVENTIONS)}')
  a = _shave(np.asarray(a, np.float64), shave)
  b = _shave(np.asarray(b, np.float64), shave)
  return float(np.mean(ssim_map(a, b, window=window,
                                data_range=data_range)))


# ------------------------------------------------------------ conventions --

@dataclasses.dataclass(frozen=True)
class Convention:
  """How an SR/HR pair is measured."""
  name: str
  shave: int | None          # Border pixels removed; None: the scale.
  ssim_window: str           # A key of SSIM_WINDOWS.
  round_levels: bool         # Y (or grey) rounded to integers (MATLAB).
  where: str                 # Who uses it.

  def shave_for(self, scale: int) -> int:
    return scale if self.shave is None else self.shave

  def describe(self, scale: int) -> str:
    """One line: channel, shave, SSIM window."""
    shave = self.shave_for(scale)
    how = f'{shave} px (= scale)' if self.shave is None else f'{shave} px'
    y = 'Y channel rounded to integers' if self.round_levels else 'float Y'
    return (f"convention '{self.name}' ({self.where}): {y} (BT.601; "
            f'greyscale files on their grey values), {how} border shave, '
            f'SSIM {SSIM_WINDOWS[self.ssim_window].name}')


CONVENTIONS = {
    'standard': Convention('standard', None, 'gaussian11', True,
                           'MATLAB scripts of EDSR/RCAN, paper Table I'),
    'official_code': Convention('official_code', 10, 'uniform7', False,
                                'official GRAM code'),
}


def get_convention(name: str) -> Convention:
  try:
    return CONVENTIONS[name]
  except KeyError:
    raise ValueError(f'unknown convention {name!r}; use one of '
                     f'{sorted(CONVENTIONS)}') from None


def measured_channel(img: np.ndarray, *, grey: bool,
                     round_levels: bool = False) -> np.ndarray:
  """The single channel that is measured: grey values for a greyscale
  image (``grey``), else BT.601 Y; float64 (H, W) in [0, 255], rounded to
  integer levels when ``round_levels``."""
  img = np.asarray(img)
  if grey:
    out = rgb_to_grey(img)
  elif img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(f'expected an (H, W, 3) RGB image, got {img.shape}; '
                     'pass grey=True for greyscale')
  else:
    out = rgb_to_y(img)
  # MATLAB rounds halves away from zero (values here are >= 0).
  return np.floor(out + 0.5) if round_levels else out


def measure(sr: np.ndarray, hr: np.ndarray, *, scale: int,
            convention: str = 'standard',
            grey: bool = False) -> tuple[float, float]:
  """(PSNR dB, SSIM) of an SR image against its HR image, both uint8-range
  (H, W, 3) (or (H, W) grey), under a named convention."""
  conv = get_convention(convention)
  sr, hr = np.asarray(sr), np.asarray(hr)
  if sr.shape != hr.shape:
    raise ValueError(f'shape mismatch {sr.shape} vs {hr.shape}')
  a = measured_channel(sr, grey=grey, round_levels=conv.round_levels)
  b = measured_channel(hr, grey=grey, round_levels=conv.round_levels)
  shave = conv.shave_for(scale)
  return (psnr(a, b, shave=shave),
          ssim(a, b, shave=shave, convention=conv.name))
