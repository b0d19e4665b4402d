"""Pictures without matplotlib: colour-mapped uncertainty maps as PNG."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Anchor colours of matplotlib's 'inferno' at 0, 1/8, ..., 1 (dark = certain,
# bright = uncertain), linearly interpolated.
_INFERNO = np.array([
    [0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
    [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]
], np.float64)


def colormap(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
  """Maps a (H, W) array >= 0 to uint8 RGB; ``vmax`` defaults to the 99th
  percentile so a few outliers do not wash the map out."""
  values = np.asarray(values, np.float64)
  if vmax is None:
    vmax = float(np.percentile(values, 99)) if values.size else 1.0
  t = np.clip(values / max(vmax, 1e-12), 0.0, 1.0) * (len(_INFERNO) - 1)
  lo = np.floor(t).astype(int)
  hi = np.minimum(lo + 1, len(_INFERNO) - 1)
  frac = (t - lo)[..., None]
  rgb = _INFERNO[lo] * (1 - frac) + _INFERNO[hi] * frac
  return np.round(rgb).astype(np.uint8)


def sigma_grey_levels(log_var: np.ndarray) -> np.ndarray:
  """(H, W, C) log-variance in [-1, 1] units -> (H, W) sigma in grey levels
  ([0, 255] units), the root of the channel-mean variance."""
  var = np.exp(np.asarray(log_var, np.float64)).mean(axis=-1)
  return np.sqrt(var) * 127.5


def save_png(path, img: np.ndarray) -> None:
  Image.fromarray(np.asarray(img, np.uint8)).save(path)
