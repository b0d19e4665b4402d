"""Colour conventions, the package's only home for them: the BT.601 luma
weights, RGB -> Y and RGB -> grey, and which image files are greyscale.
Images in [0, 255] grey levels (float or uint8)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# BT.601 luma weights, the package's only copy: Y = 16 + LUMA . RGB for RGB
# in [0, 1] (Y in [16, 235]; the weights sum to 219). Read-only.
LUMA = np.array([65.481, 128.553, 24.966])
# The same for RGB in [0, 255] grey levels: Y = 16 + LUMA_255 . RGB.
LUMA_255 = LUMA / 255.0
LUMA.setflags(write=False)
LUMA_255.setflags(write=False)

# PIL modes of single-channel (greyscale) image files, the package's only
# copy (``is_greyscale_file``).
GREY_MODES = frozenset({'1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L',
                        'I;16N', 'F'})


def rgb_to_y(img: np.ndarray) -> np.ndarray:
  """BT.601 luma of RGB in [0, 255]: 16 + (65.481 R + 128.553 G + 24.966 B)
  with RGB in [0, 1]; result in [16, 235] (float64)."""
  img = np.asarray(img, np.float64) / 255.0
  return 16.0 + img @ LUMA


def rgb_to_grey(img: np.ndarray) -> np.ndarray:
  """Grey value in [0, 255] of (H, W, 3) RGB in [0, 255] by the BT.601 luma
  weights (0.299, 0.587, 0.114), i.e. (Y - 16) * 255 / 219: exactly g when
  all three channels equal g. (H, W) input is returned as float64."""
  img = np.asarray(img, np.float64)
  if img.ndim == 2:
    return img
  return img @ (LUMA / LUMA.sum())


def is_greyscale_file(path: str | os.PathLike) -> bool:
  """Whether an image file stores one grey channel (PIL mode 'L', 'LA',
  'I;16', ...), read from the file header without decoding pixels."""
  with Image.open(path) as im:
    return im.mode in GREY_MODES
