"""Training data: image folders decoded once, random crops, a grain pipeline.

Images are decoded once per run into memory as uint8 arrays (H, W, 3); every
training crop is then a cheap slice. The pipeline yields HR crops only, uint8
NHWC in [0, 255]; the LR input is made from them on the device (see
``train.make_lr_hr``), so degradation is one jitted matmul, not per-crop
Python.

Data specs (``config.data.train_dir`` and ``config.data.sample_images``):
  * a folder path: every image in it (sorted by name, non-recursive);
  * an image path (only for sample images);
  * ``builtin:skimage`` / ``builtin:skimage/NAME``: photographs shipped inside
    the scikit-image wheel (no download) for the demo.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
import struct
import sys
import time
import warnings
from typing import Sequence

import grain
import numpy as np
from PIL import Image, ImageOps

from gramjax.errors import UserError

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
    'with --config.data.train_dir=PATH/DIV2K_train_HR (any folder of images '
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


def load_image(path: str | os.PathLike) -> np.ndarray:
  """Decodes an image file to uint8 RGB (H, W, 3) in [0, 255].

  EXIF orientation is applied; greyscale is replicated to three channels;
  alpha is dropped; 16-bit images are reduced to 8 bits. Raises ``UserError``
  naming the file when it cannot be decoded.
  """
  path = pathlib.Path(path)
  try:
    with warnings.catch_warnings():
      # Pillow only warns between 1x and 2x its pixel limit: refuse those too.
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(path) as im:
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
  except (OSError, ValueError, EOFError, SyntaxError, TypeError,
          IndexError, struct.error, Image.DecompressionBombError,
          Image.DecompressionBombWarning) as e:
    # Pillow's decoders raise all of these on corrupt files.
    raise UserError(f'{path}: cannot decode image ({e})') from e
  if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
    raise UserError(f'{path}: image has no pixels (shape {arr.shape})')
  return np.ascontiguousarray(arr)


def load_images(paths: Sequence[pathlib.Path], min_size: int,
                log_every_s: float = 5.0) -> list[np.ndarray]:
  """Decodes every image once, with progress; refuses ones under min_size."""
  images, start, last = [], time.time(), time.time()
  for i, path in enumerate(paths):
    arr = load_image(path)
    if min(arr.shape[:2]) < min_size:
      raise UserError(f'{path}: image is {arr.shape[1]}x{arr.shape[0]}, '
                      f'smaller than the {min_size}px training crop '
                      '(config.data.crop_size)')
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


@dataclasses.dataclass(frozen=True)
class RandomCropAugment(grain.transforms.RandomMap):
  """Image index -> a random training example, a dict of uint8 patches.

  ``{'hr': (crop, crop, 3)}``, plus ``'lr': (crop/scale, crop/scale, 3)``
  cut from the aligned LR image when ``lr_images`` is given (official LR
  files); both randomly flipped and rotated by 0/90/180/270 degrees (the 8
  dihedral transforms) when ``augment``.
  """

  images: Sequence[np.ndarray]
  crop: int
  augment: bool = True
  lr_images: Sequence[np.ndarray] | None = None
  scale: int = 1

  def random_map(self, index, rng: np.random.Generator):
    img = self.images[int(index)]
    if self.lr_images is None:
      h, w = img.shape[:2]
      top = int(rng.integers(0, h - self.crop + 1))
      left = int(rng.integers(0, w - self.crop + 1))
      patches = {'hr': img[top:top + self.crop, left:left + self.crop]}
    else:
      lr, s, p = self.lr_images[int(index)], self.scale, self.crop // self.scale
      h, w = lr.shape[:2]
      top = int(rng.integers(0, h - p + 1))
      left = int(rng.integers(0, w - p + 1))
      patches = {'hr': img[top * s:(top + p) * s, left * s:(left + p) * s],
                 'lr': lr[top:top + p, left:left + p]}
    if self.augment:
      flip, k = bool(rng.integers(2)), int(rng.integers(4))
      patches = {n: np.rot90(x[:, ::-1] if flip else x, k=k)
                 for n, x in patches.items()}
    return {n: np.ascontiguousarray(x) for n, x in patches.items()}


class EpochShuffle(grain.MapDataset):
  """The infinite stream of image indices: epoch ``e`` is a permutation of
  ``range(n)`` drawn from ``numpy.random.default_rng((seed, e))``.

  What ``MapDataset.range(n).shuffle(seed).repeat(None)`` gives, without its
  per-element cost: grain's ``index_shuffle`` took about 3 ms per element
  here, which capped the whole pipeline at ~300 crops/s (a GPU step of the
  paper model consumes 3,000). One permutation per epoch costs microseconds
  and is cached.
  """

  def __init__(self, n: int, seed: int):
    super().__init__()
    if n <= 0:
      raise ValueError('EpochShuffle needs at least one image')
    self._n, self._seed = int(n), int(seed)
    self._perm = functools.lru_cache(maxsize=4)(self._permutation)

  def _permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng((self._seed, epoch)).permutation(self._n)

  def __len__(self) -> int:
    return sys.maxsize

  def __str__(self) -> str:
    return f'EpochShuffle(n={self._n}, seed={self._seed})'

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, pos = divmod(int(index), self._n)
    return int(self._perm(epoch)[pos])


def train_dataset(images: Sequence[np.ndarray], *, crop: int,
                  batch_size: int, seed: int, augment: bool = True,
                  shard_index: int = 0, shard_count: int = 1,
                  num_threads: int = 2,
                  lr_images: Sequence[np.ndarray] | None = None,
                  scale: int = 1) -> grain.IterDataset:
  """Infinite grain pipeline of batches ``{'hr': uint8 (B, crop, crop, 3)}``
  (plus ``'lr'`` (B, crop/scale, crop/scale, 3) with ``lr_images``).

  Each epoch visits every image once in a seeded random order (reshuffled per
  epoch); crops and augmentations are drawn from per-element seeded RNGs, so
  the stream is a pure function of ``seed``. ``shard_index/shard_count``
  select this process's share of the stream (multi-host); ``batch_size`` is
  the per-process batch. The returned iterator's state can be checkpointed.
  """
  ds = EpochShuffle(len(images), seed)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  ds = ds.random_map(
      RandomCropAugment(images, crop, augment, lr_images, scale),
      seed=seed + 1)
  ds = ds.batch(batch_size, drop_remainder=True)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                              prefetch_buffer_size=4))


def load_training_set(data_config, scale: int):
  """HR images (and LR images for ``lr_source='files'``) for training.

  ``data_config.train_dir`` may be a raw image folder (decoded into memory
  once), a prepared folder (memory-mapped; see ``gramjax.prepare``), or a
  built-in set; with ``prepared_dir`` set, the raw folder is prepared there
  first (a no-op when up to date). Returns ``(hr_images, lr_images|None)``.
  """
  from gramjax import prepare  # pylint: disable=g-import-not-at-top
  c = data_config
  if c.lr_source not in ('bicubic', 'files'):
    raise UserError(f"config.data.lr_source must be 'bicubic' or 'files', "
                    f'got {c.lr_source!r}')
  want_lr = c.lr_source == 'files'
  source = c.train_dir
  if c.prepared_dir and not source.startswith('builtin:'):
    prepare.prepare(source, c.prepared_dir,
                    lr_dir=c.train_lr_dir if want_lr else None, scale=scale,
                    min_size=c.crop_size)
    source = c.prepared_dir
  if not source.startswith('builtin:') and prepare.is_prepared(
      os.path.expanduser(source)):
    names, hrs, lrs = prepare.open_prepared(os.path.expanduser(source))
    if want_lr and lrs is None:
      raise UserError(f"config.data.lr_source='files' but {source} was "
                      'prepared without --lr_dir')
    for name, hr in zip(names, hrs):
      if min(hr.shape[:2]) < c.crop_size:
        raise UserError(f'{name} in {source}: image is {hr.shape[1]}x'
                        f'{hr.shape[0]}, smaller than the {c.crop_size}px '
                        'training crop (config.data.crop_size)')
    logging.info('training data: %d prepared images mapped from %s',
                 len(hrs), source)
    return hrs, (lrs if want_lr else None)
  paths = resolve_images(source)
  logging.info('training data: %d images from %s', len(paths), source)
  hrs = load_images(paths, c.crop_size)
  if not want_lr:
    return hrs, None
  if not c.train_lr_dir:
    raise UserError("config.data.lr_source='files' needs "
                    'config.data.train_lr_dir (e.g. DIV2K_train_LR_bicubic/X4)')
  lr_dir = pathlib.Path(os.path.expanduser(c.train_lr_dir))
  lr_files = {p.stem: p for p in resolve_images(
      str(lr_dir), key='config.data.train_lr_dir')}
  lrs = []
  for path, hr in zip(paths, hrs):
    lr_path = prepare.find_lr_file(path, lr_files, scale, lr_dir)
    lr = load_image(lr_path)
    prepare.check_pair(hr, lr, scale, path, lr_path)
    lrs.append(lr)
  return hrs, lrs
