"""The training input pipeline: random crops of in-memory (or memory-mapped)
images in a grain pipeline, and the choice among data sources.

The pipeline yields uint8 NHWC batches in [0, 255]: ``{'hr': (B, crop, crop,
3)}``, plus ``'lr'`` (B, crop/scale, crop/scale, 3) when official LR files
are used (``config.data.lr_source='files'``). Without LR files the LR input
is made from the HR crops on the device (``gramjax.core.pixels.training_pair``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
import sys
from typing import Sequence

import grain
import numpy as np

from gramjax.core import pixels
from gramjax.data import images as images_lib
from gramjax.data import prepared
from gramjax.core.errors import UserError


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


def held_out_images(data_config) -> list[pathlib.Path]:
  """The image files of ``train_dir`` that ``config.data.holdout`` keeps out
  of training (for calibration), in name order; a raw folder only."""
  c = data_config
  if not c.holdout:
    raise UserError('config.data.holdout is 0: this run held no training '
                    'images out')
  source = os.path.expanduser(c.train_dir)
  if source.startswith('builtin:') or prepared.is_prepared(source):
    raise UserError(f'config.data.train_dir={c.train_dir}: held-out images '
                    'can only be named in a folder of image files')
  return images_lib.split_holdout(images_lib.resolve_images(source),
                                  c.holdout)[1]


def load_training_set(data_config, scale: int):
  """HR images (and LR images for ``lr_source='files'``) for training.

  ``data_config.train_dir`` may be a raw image folder (decoded into memory
  once), a prepared folder (memory-mapped; see ``gramjax.prepare``), or a
  built-in set; with ``prepared_dir`` set, the raw folder is prepared there
  first (a no-op when up to date). ``holdout`` images of it (see
  ``images.holdout_indices``) are left out. Returns ``(hr_images,
  lr_images|None)``.
  """
  c = data_config
  want_lr = c.lr_source == 'files'
  source = c.train_dir
  if c.prepared_dir and not source.startswith('builtin:'):
    prepared.prepare(source, c.prepared_dir,
                    lr_dir=c.train_lr_dir if want_lr else None, scale=scale,
                    min_size=c.crop_size)
    source = c.prepared_dir
  if not source.startswith('builtin:') and prepared.is_prepared(
      os.path.expanduser(source)):
    names, hrs, lrs = prepared.open_prepared(os.path.expanduser(source))
    if c.holdout:
      keep = images_lib.split_holdout(range(len(names)), c.holdout)[0]
      names, hrs = [names[i] for i in keep], [hrs[i] for i in keep]
      lrs = None if lrs is None else [lrs[i] for i in keep]
    if want_lr and lrs is None:
      raise UserError(f"config.data.lr_source='files' but {source} was "
                      'prepared without LR files')
    for name, hr in zip(names, hrs):
      pixels.require_size(hr.shape, c.crop_size, f'{name} in {source}',
                          f'the {c.crop_size}px training crop '
                          '(config.data.crop_size)')
    logging.info('training data: %d prepared images mapped from %s',
                 len(hrs), source)
    return hrs, (lrs if want_lr else None)
  paths, held_out = images_lib.split_holdout(
      images_lib.resolve_images(source), c.holdout)
  logging.info('training data: %d images from %s%s', len(paths), source,
               f' ({len(held_out)} held out: config.data.holdout)'
               if held_out else '')
  hrs = images_lib.load_images(paths, c.crop_size)
  if not want_lr:
    return hrs, None
  lr_dir = pathlib.Path(os.path.expanduser(c.train_lr_dir))
  lr_files = {p.stem: p for p in images_lib.resolve_images(
      str(lr_dir), key='config.data.train_lr_dir')}
  lrs = []
  for path, hr in zip(paths, hrs):
    lr_path = prepared.find_lr_file(path, lr_files, scale, lr_dir)
    lr = images_lib.load_image(lr_path)
    prepared.check_pair(hr, lr, scale, path, lr_path)
    lrs.append(lr)
  return hrs, lrs
