"""Running a trained model: load a workdir, super-resolve images of any size.

Pixel ranges: the LR input is float in [0, 1]; ``mean`` comes back in
[-1, 1] and ``log_var`` = log sigma^2 with sigma in [-1, 1] units
(``gramjax.core.pixels`` converts both to grey levels).

Tiling (the only tiling code of gramjax): the LR input is cut into ``tile``
x ``tile`` tiles, each run with the model's receptive radius of LR context
on every side that is not an image border, and only each tile's centre is
kept. Every kept output pixel then sees exactly the input it sees in an
untiled run (zero padding happens only at true image borders), so the tiled
result equals the untiled one up to float rounding, at bounded memory.

    predictor = inference.load('runs/gram')           # latest checkpoint
    mean, log_var = predictor(lr01)                   # (h, w, 3) in [0, 1]
    sr = pixels.mean_to_uint8(mean)                   # uint8 (4h, 4w, 3)
    sigma = pixels.sigma_grey(log_var)                # grey levels (4h, 4w)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import math
import os
import pathlib
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from gramjax.state import checkpoint as ckpt_lib
from gramjax import models
from gramjax.state import train_state as state_lib
from gramjax.core.errors import UserError


def tile_windows(length: int, tile: int, halo: int):
  """Yields (keep_start, keep_end, in_start, in_end) along one axis.

  Every input window has the same size, min(length, tile + 2*halo): windows
  at the ends are shifted inwards rather than cut, so one image compiles
  one shape. Kept pixels stay >= halo from any window edge that is not an
  image border, which is what makes tiling exact.
  """
  size = min(length, tile + 2 * halo)
  for start in range(0, length, tile):
    end = min(start + tile, length)
    in_start = min(max(0, start - halo), length - size)
    yield start, end, in_start, in_start + size


def count_tiles(shape, tile: int) -> int:
  """How many model calls an (h, w, ...) LR image takes at ``tile``."""
  h, w = shape[:2]
  if not tile or (h <= tile and w <= tile):
    return 1
  return math.ceil(h / tile) * math.ceil(w / tile)


@dataclasses.dataclass
class Predictor:
  """A trained model ready to run on LR images in [0, 1] of any size."""
  config: ml_collections.ConfigDict
  graphdef: Any
  params: Any
  model_state: Any
  step: int | None = None
  weights: str = 'params'   # 'ema' when these are the EMA of the params.
  mean_only: bool = False   # Ignore the variance head.

  def __post_init__(self):
    graphdef = self.graphdef

    @jax.jit
    def forward(params, model_state, lr):
      return nnx.merge(graphdef, params, model_state)(lr, train=False)

    self._forward = forward

  @property
  def scale(self) -> int:
    return int(self.config.model.scale)

  @property
  def radius(self) -> int:
    """The tiles' halo in LR pixels: the model's receptive radius."""
    return models.receptive_radius(self.config.model)

  @property
  def predicts_uncertainty(self) -> bool:
    """False for models trained with the plain MSE (untrained variance
    head, SRResNet* of Table I) and for ``without_uncertainty()``."""
    return not self.mean_only and self.config.loss.name != 'mse'

  @functools.cached_property
  def digest(self) -> str:
    """SHA-256 of the weights this predictor runs (params or their EMA,
    and the BatchNorm statistics): each leaf's path, dtype, shape and
    bytes, in tree order. What a calibration is bound to."""
    h = hashlib.sha256()
    for tree in (self.params, self.model_state):
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        arr = np.asarray(leaf)
        h.update(f'{jax.tree_util.keystr(path)} {arr.dtype} {arr.shape};'
                 .encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()

  def model_key(self) -> dict:
    """What a calibration fitted on this model's outputs records: the
    step, which weights, their digest, the scale and the loss."""
    return {'step': self.step, 'weights': self.weights,
            'digest': self.digest, 'scale': self.scale,
            'loss': str(self.config.loss.name)}

  def without_uncertainty(self) -> 'Predictor':
    """This model with its variance head ignored: ``predicts_uncertainty``
    is False, so evaluations measure the mean alone (e.g. for a diverged
    variance head)."""
    return dataclasses.replace(self, mean_only=True)

  def forward(self, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One untiled model call: (N, h, w, C) in [0, 1] -> (mean, log_var),
    each (N, h*s, w*s, C) float32."""
    mean, log_var = self._forward(self.params, self.model_state,
                                  jnp.asarray(lr, jnp.float32))
    return np.asarray(mean), np.asarray(log_var)

  def strips(self, lr: np.ndarray, tile: int = 128,
             on_tile: Callable[[int], None] | None = None
             ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yields ``(row0, row1, mean, log_var)`` for HR rows [row0, row1), top
    to bottom, each (row1 - row0, w*s, C) float32: one strip of tiles at a
    time, so the whole prediction of a huge image is never in memory.
    ``on_tile(1)`` is called after every model call (progress)."""
    lr = np.asarray(lr, np.float32)
    if lr.ndim != 3:
      raise ValueError(f'expected an (h, w, C) image, got shape {lr.shape}')
    h, w, c = lr.shape
    s, halo = self.scale, self.radius
    tile = tile if tile and (h > tile or w > tile) else max(h, w)
    cols = list(tile_windows(w, tile, halo))
    for y0, y1, iy0, iy1 in tile_windows(h, tile, halo):
      mean = np.empty(((y1 - y0) * s, w * s, c), np.float32)
      log_var = np.empty_like(mean)
      for x0, x1, ix0, ix1 in cols:
        m, v = self.forward(lr[None, iy0:iy1, ix0:ix1])
        ys = slice((y0 - iy0) * s, (y1 - iy0) * s)
        xs = slice((x0 - ix0) * s, (x1 - ix0) * s)
        mean[:, x0 * s:x1 * s] = m[0, ys, xs]
        log_var[:, x0 * s:x1 * s] = v[0, ys, xs]
        if on_tile is not None:
          on_tile(1)
      yield y0 * s, y1 * s, mean, log_var

  def __call__(self, lr: np.ndarray, tile: int = 128
               ) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, C) LR in [0, 1] -> (mean, log_var), each (h*s, w*s, C)
    float32, run in ``tile`` x ``tile`` LR tiles (0: no tiling)."""
    parts = list(self.strips(lr, tile))
    return (np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]))


def from_state(config, graphdef, state: state_lib.TrainState) -> Predictor:
  """A Predictor on this host's copy of a (replicated) train state: its
  EMA weights when the state keeps them (``config.ema_decay``), else its
  parameters; ``predictor.weights`` says which."""
  local = lambda x: x if x.is_fully_addressable else x.addressable_data(0)
  state = jax.tree.map(local, state)
  ema = state.ema_params is not None
  return Predictor(config, graphdef, state.ema_params if ema else
                   state.params, state.model_state, int(state.step),
                   'ema' if ema else 'params')


class ModelError(UserError):
  """A model that cannot be found or loaded: ``what`` ('workdir', 'step' or
  'checkpoint') with ``value`` is wrong because ``why``. The message reads
  ``"step 99: not in ..."``; a command may name its own flag instead."""

  def __init__(self, what: str, value, why: str):
    self.what, self.value, self.why = what, value, why
    super().__init__(f'{what} {value}: {why}')


def parse_step(value: str | int | None) -> int | str | None:
  """A step as given: None (latest), 'best', or a step number."""
  if value is None or isinstance(value, int) or value == 'best':
    return value
  if not str(value).isdigit():
    raise ModelError('step', value, 'give a step number >= 0 or best')
  return int(value)


def check_workdir(workdir: str | pathlib.Path) -> pathlib.Path:
  """The workdir as a path, or a ``ModelError`` when it is not a trained
  workdir (no folder, no checkpoints/ in it)."""
  workdir = pathlib.Path(workdir).expanduser()
  if not workdir.is_dir():
    raise ModelError('workdir', workdir, 'no such folder')
  if not (workdir / 'checkpoints').is_dir():
    raise ModelError('workdir', workdir, 'no checkpoints/ folder (train it '
                     'first with python -m gramjax.main)')
  return workdir


def _open(workdir: pathlib.Path) -> ckpt_lib.Checkpoints:
  """A reader's view of the checkpoints: orbax read-only, nothing written."""
  return ckpt_lib.open_read_only(workdir)


def _resolve_step(ckpts: ckpt_lib.Checkpoints, workdir: pathlib.Path,
                  step: int | str | None) -> int:
  """The checkpoint step to load: ``step``, the best or the latest."""
  steps = ckpts.all_steps()
  if not steps:
    raise ModelError('workdir', workdir, 'no finished checkpoint in '
                     f'{ckpts.directory}')
  if step == 'best':
    step = ckpt_lib.best_step(workdir)
    if step is None:
      raise ModelError('step', 'best', f'{workdir} has no best checkpoint '
                       '(it is kept when config.best_metric names a '
                       'validation metric of config.evals)')
  if step is None:
    return max(steps)
  if step not in steps:
    raise ModelError('step', step, f'not in {ckpts.directory} (has '
                     f'{sorted(steps)})')
  return step


def latest_step(workdir: str | pathlib.Path) -> int:
  """The step of the workdir's latest finished checkpoint."""
  workdir = check_workdir(workdir)
  ckpts = _open(workdir)
  try:
    return _resolve_step(ckpts, workdir, None)
  finally:
    ckpts.close()


def workdir_config(workdir: str | pathlib.Path,
                   step: int | str | None = None
                   ) -> ml_collections.ConfigDict:
  """The config saved with a workdir's checkpoint (latest, ``step`` or
  'best')."""
  workdir = check_workdir(workdir)
  ckpts = _open(workdir)
  try:
    step = _resolve_step(ckpts, workdir, parse_step(step))
    return ml_collections.ConfigDict(ckpts.restore_config(step))
  finally:
    ckpts.close()


def config_file(path: str | pathlib.Path, arg: str | None = None):
  """``get_config(arg)`` of a config file such as ``configs/gram.py``
  (``arg`` None: ``get_config()``); returns (config, the module)."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise ModelError('config', path, 'no such file')
  spec = importlib.util.spec_from_file_location(
      f'gramjax_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config() if arg is None else module.get_config(arg)
  return config, module


def resolve_model(workdir: str | None, checkpoint: str | None,
                  step: int | str | None
                  ) -> tuple[pathlib.Path, int | str | None]:
  """A model given as a workdir and/or a checkpoint folder, and a step ->
  (workdir, step or None: the latest). ``checkpoint`` is a step folder
  ``WORKDIR/checkpoints/STEP`` (workdir and step are read off the path);
  ``WORKDIR/checkpoints`` or the workdir itself also work."""
  step = parse_step(step)
  if checkpoint:
    derived, ck_step = _checkpoint_dir(checkpoint)
    if workdir:
      wd = pathlib.Path(workdir).expanduser()
      if not wd.is_dir() or not os.path.samefile(wd, derived):
        raise ModelError('workdir', wd, f'and the checkpoint {checkpoint} '
                         'name different models; give one of them')
    if step is not None and ck_step is not None and step != ck_step:
      raise ModelError('step', step, f'and the checkpoint {checkpoint} '
                       f'(step {ck_step}) disagree; give one of them')
    workdir = derived
    step = ck_step if ck_step is not None else step
  if not workdir:
    raise ModelError('workdir', None, 'give a training workdir or a '
                     'checkpoint folder')
  return check_workdir(workdir), step


def _checkpoint_dir(checkpoint: str) -> tuple[pathlib.Path, int | None]:
  """A checkpoint folder -> (its workdir, its step or None)."""
  ck = pathlib.Path(checkpoint).expanduser()
  if not ck.exists():
    raise ModelError('checkpoint', ck, 'no such folder')
  if not ck.is_dir():
    raise ModelError('checkpoint', ck, 'not a folder (give a checkpoint '
                     'step folder such as WORKDIR/checkpoints/1200)')
  ck = pathlib.Path(os.path.abspath(ck))
  if ck.name.isdigit() and ck.parent.name == 'checkpoints':
    return ck.parent.parent, int(ck.name)
  if ck.name == 'checkpoints':
    return ck.parent, None
  if (ck / 'checkpoints').is_dir():
    return ck, None
  raise ModelError('checkpoint', ck, 'not a checkpoint folder (expected '
                   'WORKDIR/checkpoints/STEP)')


def load(workdir: str | pathlib.Path, step: int | str | None = None, *,
         mean_only: bool = False) -> Predictor:
  """Loads the model of a training workdir (latest checkpoint, ``step``,
  or ``'best'``: the best by the run's validation metric), built from the
  config saved with that checkpoint. ``mean_only``: ignore the variance
  head (``predicts_uncertainty`` is then False)."""
  workdir = check_workdir(workdir)
  ckpts = _open(workdir)
  try:
    step = _resolve_step(ckpts, workdir, parse_step(step))
    config = ml_collections.ConfigDict(ckpts.restore_config(step))
    recipe = state_lib.build(config)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state = ckpts.restore(step, recipe.abstract_state(device))
  finally:
    ckpts.close()
  predictor = from_state(config, recipe.graphdef, state)
  return predictor.without_uncertainty() if mean_only else predictor
