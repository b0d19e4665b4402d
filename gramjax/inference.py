"""Running a trained model: load a workdir, super-resolve images of any size.

Large images are tiled: the LR input is cut into ``tile`` x ``tile`` tiles,
each run with ``receptive_radius`` LR pixels of context on every side that
is not an image border, and only each tile's centre is kept. Every kept
output pixel then sees exactly the input it sees in an untiled run (zero
padding happens only at true image borders), so the tiled result equals the
untiled one up to float rounding, at bounded memory.

Pixel ranges: the LR input is float in [0, 1]; ``mean`` comes back in
[-1, 1] and ``log_var`` = log sigma^2 with sigma in [-1, 1] units (multiply
sigma by 127.5 for grey levels).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from gramjax import checkpoint as ckpt_lib
from gramjax import train as train_lib
from gramjax.errors import UserError
from gramjax.models.srresnet import _UPSAMPLE_STAGES


def receptive_radius(model_config) -> int:
  """Radius, in LR pixels, of the region of the input that one output pixel
  of SRResNet depends on (rounded up, plus one pixel of margin)."""
  m = model_config
  radius = m.first_kernel // 2 + 2 * m.num_blocks + 1  # first, blocks, trunk
  resolution = 1
  for r in _UPSAMPLE_STAGES[m.scale]:
    radius += 1 / resolution                          # 3x3 conv at this res.
    resolution *= r
  radius += (m.head_kernel // 2) / m.scale            # heads at HR.
  return int(math.ceil(radius)) + 1


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


@dataclasses.dataclass
class Predictor:
  """A trained model ready to run; ``__call__`` tiles large inputs."""
  config: ml_collections.ConfigDict
  graphdef: Any
  params: Any
  model_state: Any
  step: int | None = None

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
    return receptive_radius(self.config.model)

  def run(self, lr: np.ndarray):
    """Untiled: (N, h, w, C) or (h, w, C) in [0, 1] -> (mean, log_var)."""
    lr = np.asarray(lr, np.float32)
    squeeze = lr.ndim == 3
    mean, log_var = self._forward(self.params, self.model_state,
                                  jnp.asarray(lr[None] if squeeze else lr))
    mean, log_var = np.asarray(mean), np.asarray(log_var)
    return (mean[0], log_var[0]) if squeeze else (mean, log_var)

  def __call__(self, lr: np.ndarray, tile: int = 128):
    """(h, w, C) LR in [0, 1] -> (mean, log_var), each (h*s, w*s, C)
    float32, tiled with ``tile`` x ``tile`` LR tiles (0: no tiling)."""
    lr = np.asarray(lr, np.float32)
    if lr.ndim != 3:
      raise ValueError(f'expected an (h, w, C) image, got shape {lr.shape}')
    h, w, c = lr.shape
    if not tile or (h <= tile and w <= tile):
      return self.run(lr)
    s, halo = self.scale, self.radius
    mean = np.empty((h * s, w * s, c), np.float32)
    log_var = np.empty_like(mean)
    for y0, y1, iy0, iy1 in tile_windows(h, tile, halo):
      for x0, x1, ix0, ix1 in tile_windows(w, tile, halo):
        m, v = self.run(lr[iy0:iy1, ix0:ix1])
        ys = slice((y0 - iy0) * s, (y1 - iy0) * s)
        xs = slice((x0 - ix0) * s, (x1 - ix0) * s)
        mean[y0 * s:y1 * s, x0 * s:x1 * s] = m[ys, xs]
        log_var[y0 * s:y1 * s, x0 * s:x1 * s] = v[ys, xs]
    return mean, log_var


def from_state(config, graphdef, state: train_lib.TrainState) -> Predictor:
  """A Predictor on this host's copy of a (replicated) train state."""
  local = lambda x: x if x.is_fully_addressable else x.addressable_data(0)
  state = jax.tree.map(local, state)
  return Predictor(config, graphdef, state.params, state.model_state,
                   int(state.step))


def load(workdir: str | pathlib.Path, step: int | None = None) -> Predictor:
  """Loads the model of a training workdir (latest checkpoint or ``step``),
  built from the config saved with that checkpoint."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise UserError(f'--workdir={workdir}: no such folder')
  if not (workdir / 'checkpoints').is_dir():
    raise UserError(f'--workdir={workdir}: no checkpoints/ folder (train it '
                    'first with python -m gramjax.main)')
  ckpts = ckpt_lib.Checkpoints(workdir, every=1, keep=1_000_000,
                               async_save=False)
  try:
    steps = ckpts.all_steps()
    if not steps:
      raise UserError(f'--workdir={workdir}: no finished checkpoint in '
                      f'{ckpts.directory}')
    if step is None:
      step = max(steps)
    elif step not in steps:
      raise UserError(f'--step={step}: not in {ckpts.directory} (has '
                      f'{sorted(steps)})')
    config = ml_collections.ConfigDict(ckpts.restore_config(step))
    graphdef, params, model_state, init_state = (
        train_lib.model_and_state_fn(config))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        jax.eval_shape(init_state, params, model_state))
    state = ckpts.restore(step, abstract)
  finally:
    ckpts.close()
  return from_state(config, graphdef, state)
