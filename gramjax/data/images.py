"""Image files: which files a data spec names, and decoding them.

Data specs (``config.data.train_dir``, ``config.data.sample_images``,
evaluation folders):
  * a folder path: every image in it (sorted by name, non-recursive);
  * an image path (only for held-out images);
  * ``builtin:skimage`` / ``builtin:skimage/NAME``: photographs shipped inside
    the scikit-image wheel (no download) for the demo.

Decoded images are uint8 RGB (H, W, 3) in [0, 255].
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import struct
import time
import warnings
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from gramjax.core import pixels
from gramjax.core.errors import UserError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp',
                  '.ppm', '.pgm')

# Natural photographs inside the scikit-image wheel (skimage/data/). The cat
# `chelsea` is held out for the demo's sample prediction.
SKIMAGE_TRAIN = ('astronaut.png', 'coffee.png', 'rocket.jpg',
                 'motorcycle_left.png', 'ihc.png', 'hubble_deep_field.jpg',
                 'brick.png', 'grass.png', 'gravel.png', 'camera.png')
SKIMAGE_HELD_OUT = ('chelsea.png',)

GET_DIV2K = (
    'DIV2K (Agustsson & Timofte 2017) is at https://data.vision.ee.ethz.ch/'
    'cvl/DIV2K/: download DIV2K_train_HR.zip, unpack it and pass the folder '
    'as config.data.train_dir = PATH/DIV2K_train_HR (any folder of images '
    'works, e.g. ../shared/data/SunHays80 for a small CPU run).')


def _skimage_dir() -> pathlib.Path:
  try:
    import skimage  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
        "the 'builtin:skimage' demo data needs scikit-image: "
        "pip install -e '.[demo]'") from e
  return pathlib.Path(skimage.__file__).parent / 'data'


def resolve_images(spec: str, *, key: str = 'config.data.train_dir',
                   held_out: bool = False) -> list[pathlib.Path]:
  """Turns a data spec into a sorted list of image paths (see module doc)."""
  if spec.startswith('builtin:'):
    name = spec[len('builtin:'):]
    root = _skimage_dir()
    if name == 'skimage':
      names = SKIMAGE_HELD_OUT if held_out else SKIMAGE_TRAIN
      return [root / n for n in names]
    if name.startswith('skimage/'):
      stem = name[len('skimage/'):]
      hits = sorted(p for p in root.iterdir()
                    if p.stem == stem and p.suffix.lower() in IMAGE_SUFFIXES)
      if not hits:
        raise UserError(f'{key}={spec!r}: no image {stem!r} in {root}')
      return hits[:1]
    raise UserError(f"{key}={spec!r}: unknown built-in dataset; use "
                    "'builtin:skimage' or 'builtin:skimage/NAME'")
  path = pathlib.Path(os.path.expanduser(spec))
  if not path.exists():
    hint = '' if held_out else ' ' + GET_DIV2K
    raise UserError(f'{key}: {path} does not exist.{hint}')
  if path.is_file():
    return [path]
  files = sorted(p for p in path.iterdir()
                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise UserError(f'{key}: no images ({", ".join(IMAGE_SUFFIXES)}) in '
                    f'{path}')
  return files


def holdout_indices(count: int, holdout: int) -> list[int]:
  """Indices of the ``holdout`` images kept out of training among ``count``
  sorted ones: the middle of each of ``holdout`` equal runs, so they spread
  over the whole (name-sorted, hence often category-sorted) folder."""
  if holdout < 0 or holdout >= count:
    raise UserError(f'config.data.holdout={holdout}: must be at least 0 and '
                    f'below the {count} training images')
  return [(2 * k + 1) * count // (2 * holdout) for k in range(holdout)]


def split_holdout(items: Sequence, holdout: int) -> tuple[list, list]:
  """``(kept, held_out)``: ``items`` without and with ``holdout_indices``."""
  out = set(holdout_indices(len(items), holdout)) if holdout else set()
  return ([x for i, x in enumerate(items) if i not in out],
          [x for i, x in enumerate(items) if i in out])


@dataclasses.dataclass(frozen=True)
class ImageFile:
  """A decoded image file: ``rgb`` uint8 (H, W, 3) in [0, 255], and what the
  file was (Pillow's ``mode``; ``alpha``: it had an alpha channel or a
  transparent colour, dropped)."""
  rgb: np.ndarray
  mode: str
  alpha: bool


def content_digest(rgb: np.ndarray) -> str:
  """SHA-256 of decoded uint8 pixels (shape and bytes): the same for the
  same image in another file, folder or lossless format."""
  rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
  return hashlib.sha256(f'{rgb.shape};'.encode() + rgb.tobytes()).hexdigest()


def load_image(path: str | os.PathLike) -> np.ndarray:
  """Decodes an image file to uint8 RGB (H, W, 3) in [0, 255].

  EXIF orientation is applied; greyscale is replicated to three channels;
  alpha is dropped; 16-bit images are reduced to 8 bits. Raises ``UserError``
  naming the file when it cannot be decoded.
  """
  return decode_image(path).rgb


def decode_image(path: str | os.PathLike) -> ImageFile:
  """``load_image``'s pixels and the file's mode and alpha, from one
  opening of the file."""
  path = pathlib.Path(path)
  try:
    with warnings.catch_warnings():
      # Pillow only warns between 1x and 2x its pixel limit: refuse those too.
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(path) as im:
        mode, bands = im.mode, im.getbands()
        alpha = 'A' in bands or 'a' in bands or 'transparency' in im.info
        im = ImageOps.exif_transpose(im)
        im.load()
        if im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
          # 16-bit data (PNG I;16, or 'I' as older Pillow decodes it): scale
          # by the format's range, never by the content.
          arr = np.asarray(im, dtype=np.float64)
          arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
          arr = np.repeat(arr[..., None], 3, axis=-1)
        else:
          arr = np.asarray(im.convert('RGB'), dtype=np.uint8)
  except FileNotFoundError as e:
    raise UserError(f'{path}: file not found') from e
  except IsADirectoryError as e:
    raise UserError(f'{path}: is a directory, not an image') from e
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise UserError(f'{path}: too large: over the '
                    f'{Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpixel limit, '
                    'refused as a possible decompression bomb') from e
  except (OSError, ValueError, EOFError, SyntaxError, TypeError,
          IndexError, struct.error) as e:
    # Pillow's decoders raise all of these on corrupt files.
    raise UserError(f'{path}: cannot decode image ({e})') from e
  if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
    raise UserError(f'{path}: image has no pixels (shape {arr.shape})')
  return ImageFile(np.ascontiguousarray(arr), mode, alpha)


def load_images(paths: Sequence[pathlib.Path], min_size: int,
                log_every_s: float = 5.0) -> list[np.ndarray]:
  """Decodes every image once, with progress; refuses ones under min_size."""
  images, start, last = [], time.time(), time.time()
  for i, path in enumerate(paths):
    arr = load_image(path)
    pixels.require_size(arr.shape, min_size, path, f'the {min_size}px '
                        'training crop (config.data.crop_size)')
    images.append(arr)
    if time.time() - last > log_every_s and i + 1 < len(paths):
      last = time.time()
      rate = (i + 1) / (last - start)
      logging.info('decoded %d/%d images (%.1f/s, ETA %.0fs)', i + 1,
                   len(paths), rate, (len(paths) - i - 1) / rate)
  mb = sum(a.nbytes for a in images) / 2**20
  logging.info('decoded %d images (%.0f MiB) in %.1fs', len(images), mb,
               time.time() - start)
  return images
