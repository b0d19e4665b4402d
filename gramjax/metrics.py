"""Image-quality metrics (numpy, on uint8-range images)."""

from __future__ import annotations

import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
  """BT.601 luma of RGB in [0, 255]: 16 + (65.481 R + 128.553 G + 24.966 B)
  with RGB in [0, 1]; result in [16, 235] (float64)."""
  img = np.asarray(img, np.float64) / 255.0
  return 16.0 + img @ np.array([65.481, 128.553, 24.966])


def psnr(a: np.ndarray, b: np.ndarray, *, shave: int = 0,
         peak: float = 255.0) -> float:
  """PSNR in dB between two images of one shape (H, W[, C]) in [0, peak],
  after removing ``shave`` pixels from every border."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f'shape mismatch {a.shape} vs {b.shape}')
  if shave:
    a = a[shave:-shave, shave:-shave]
    b = b[shave:-shave, shave:-shave]
  mse = np.mean((a - b) ** 2)
  return float('inf') if mse == 0 else float(10 * np.log10(peak**2 / mse))


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
  """PSNR on the Y channel of uint8-range RGB images (SR convention)."""
  return psnr(rgb_to_y(sr), rgb_to_y(hr), shave=shave)
