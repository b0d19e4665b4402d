"""The one validation of an experiment config (the keys of
``configs/base.py``): every check that needs no data and no devices, each
error a ``UserError`` naming the key and the value. The trainer runs
``validate`` before it builds anything; the library modules below only
check their own arguments. What needs the data (enough images to hold out,
LR files that pair up) or the devices is checked where they are read.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from gramjax.core import losses
from gramjax.core.errors import UserError
from gramjax.metrics import quality
from gramjax.models import srresnet

NAN_POLICIES = ('stop', 'skip')
BEST_MODES = ('max', 'min')
LR_SOURCES = ('bicubic', 'files')
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')
# config.evals.<name>: its keys and their defaults (None: required).
EVALUATOR_KEYS = {'folder': None, 'every': None, 'convention': 'standard',
                  'max_images': 0, 'tile': 128}
# What a validation logs, as val/<name>/<metric> (the uncertainty figures
# only for a model with a variance head).
VALIDATION_METRICS = ('psnr', 'ssim', 'nll', 'ause', 'coverage_90')


def _need(ok: bool, key: str, value: Any, what: str) -> None:
  if not ok:
    raise UserError(f'config.{key}={value!r}: {what}')


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _check_run(c) -> None:
  for key in ('batch_size', 'log_every', 'checkpoint_every',
              'keep_checkpoints'):
    _need(_is_int(c[key]) and c[key] >= 1, key, c[key], 'must be >= 1')
  _need(_is_int(c.total_steps) and c.total_steps >= 0, 'total_steps',
        c.total_steps, 'must be >= 0')
  _need(_is_int(c.steps_per_dispatch) and c.steps_per_dispatch >= 0,
        'steps_per_dispatch', c.steps_per_dispatch,
        'must be >= 0 (0: the platform default)')
  _need(c.nan_policy in NAN_POLICIES, 'nan_policy', c.nan_policy,
        f'use one of {", ".join(NAN_POLICIES)}')
  _need(_is_int(c.cpu_devices) and c.cpu_devices >= 0, 'cpu_devices',
        c.cpu_devices, 'must be >= 0 (0: one per core, 1: one device)')
  _need(c.cpu_devices <= 1 or c.batch_size % c.cpu_devices == 0,
        'cpu_devices', c.cpu_devices,
        f'does not divide config.batch_size={c.batch_size}')
  decay = c.get('ema_decay', 0.0)
  _need(0.0 <= decay < 1.0, 'ema_decay', decay,
        'must be in [0, 1) (0: off; BasicSR uses 0.999)')
  p = tuple(c.profile_steps)
  _need(not p or (len(p) == 2 and all(_is_int(s) for s in p)
                  and 0 <= p[0] < p[1]), 'profile_steps', p,
        'give () or (first, last) with 0 <= first < last')


def _check_model(m) -> None:
  _need(m.name == 'srresnet', 'model.name', m.name, "use 'srresnet'")
  _need(m.scale in srresnet.UPSAMPLE_STAGES, 'model.scale', m.scale,
        f'use one of {sorted(srresnet.UPSAMPLE_STAGES)}')
  _need(m.activation in srresnet.ACTIVATIONS, 'model.activation',
        m.activation, f'use one of {", ".join(srresnet.ACTIVATIONS)}')
  _need(m.mean_activation in srresnet.MEAN_ACTIVATIONS,
        'model.mean_activation', m.mean_activation,
        f'use one of {", ".join(srresnet.MEAN_ACTIVATIONS)}')
  dtype = m.get('compute_dtype', 'float32')
  _need(dtype in COMPUTE_DTYPES, 'model.compute_dtype', dtype,
        f'use one of {", ".join(COMPUTE_DTYPES)}')
  for key in ('num_blocks', 'channels', 'first_kernel', 'head_kernel'):
    _need(_is_int(m[key]) and m[key] >= 1, f'model.{key}', m[key],
          'must be >= 1')


def _check_loss(c) -> None:
  loss = c.loss
  names = ', '.join(sorted(losses.LOSSES))
  _need(loss.name in losses.LOSSES, 'loss.name', loss.name,
        f'not a registered loss; choose one of {names}')
  _need(loss.name != 'faithful' or c.model.get('log_var_stop_gradient'),
        'loss.name', loss.name,
        'needs config.model.log_var_stop_gradient=True (else the variance '
        "head's gradient reaches the mean's trunk)")
  accepted = losses.accepted_options(loss.name)
  for key, value in dict(loss.get('options') or {}).items():
    _need(accepted is None or key in accepted, f'loss.options.{key}', value,
          f'not an option of loss {loss.name!r}; it accepts '
          f'{", ".join(accepted or ()) or "no options"}')
    if key == 'units':
      try:
        losses.units_scale(value)
      except ValueError as e:
        raise UserError(f'config.loss.options.units={value!r}: {e}') from e
  clip = tuple(loss.log_var_clip)
  _need(not clip or (len(clip) == 2 and clip[0] < clip[1]),
        'loss.log_var_clip', clip, 'give () or (lo, hi) with lo < hi')
  _need(_is_int(loss.mse_warmup) and loss.mse_warmup >= 0,
        'loss.mse_warmup', loss.mse_warmup,
        'give a number of steps >= 0 (0: none)')


def _check_optimizer(o) -> None:
  values, bounds = tuple(o.lr_values), tuple(o.lr_boundaries)
  _need(len(values) == len(bounds) + 1, 'optimizer.lr_values', values,
        f'needs one entry more than config.optimizer.lr_boundaries={bounds}')
  _need(all(b2 > b1 for b1, b2 in zip(bounds, bounds[1:]))
        and (not bounds or bounds[0] > 0), 'optimizer.lr_boundaries',
        bounds, 'must be positive and strictly increasing')
  _need(o.grad_clip_norm >= 0, 'optimizer.grad_clip_norm', o.grad_clip_norm,
        'must be >= 0 (0: no clipping)')


def _check_data(c) -> None:
  d = c.data
  _need(d.lr_source in LR_SOURCES, 'data.lr_source', d.lr_source,
        f'use one of {", ".join(LR_SOURCES)}')
  _need(d.lr_source != 'files' or d.train_lr_dir, 'data.lr_source',
        d.lr_source, 'needs config.data.train_lr_dir (e.g. '
        'DIV2K_train_LR_bicubic/X4)')
  _need(_is_int(d.crop_size) and d.crop_size > 0
        and d.crop_size % c.model.scale == 0, 'data.crop_size', d.crop_size,
        f'must be a positive multiple of config.model.scale={c.model.scale}')
  _need(_is_int(d.holdout) and d.holdout >= 0, 'data.holdout', d.holdout,
        'must be >= 0')
  _need(_is_int(d.num_threads) and d.num_threads >= 1, 'data.num_threads',
        d.num_threads, 'must be >= 1')


def eval_specs(config) -> dict[str, dict]:
  """``config.evals`` checked, each spec with its defaults filled in:
  name -> {folder, every, convention, max_images, tile}."""
  out = {}
  for name, spec in dict(config.get('evals') or {}).items():
    key, spec = f'evals.{name}', dict(spec)
    for k in sorted(set(spec) - set(EVALUATOR_KEYS)):
      _need(False, f'{key}.{k}', spec[k], 'not a key of a validation set; '
            f'use {", ".join(EVALUATOR_KEYS)}')
    spec = {k: spec.get(k, default) for k, default in EVALUATOR_KEYS.items()}
    _need(bool(spec['folder']), f'{key}.folder', spec['folder'],
          'give a folder, a file, builtin:NAME or heldout[a:b]')
    _need(not str(spec['folder']).startswith('heldout')
          or config.data.holdout, f'{key}.folder', spec['folder'],
          'held-out images need config.data.holdout > 0')
    _need(_is_int(spec['every']) and spec['every'] >= 1, f'{key}.every',
          spec['every'], 'must be >= 1 (steps)')
    _need(spec['convention'] in quality.CONVENTIONS, f'{key}.convention',
          spec['convention'], f'use one of {", ".join(quality.CONVENTIONS)}')
    for k in ('max_images', 'tile'):
      _need(_is_int(spec[k]) and spec[k] >= 0, f'{key}.{k}', spec[k],
            'must be >= 0 (0: all images / no tiling)')
    out[name] = spec
  return out


def _check_best(c, evals: dict) -> None:
  _need(c.best_mode in BEST_MODES, 'best_mode', c.best_mode,
        f'use one of {", ".join(BEST_MODES)}')
  if not c.best_metric:
    return
  parts = c.best_metric.split('/')
  _need(len(parts) == 3 and parts[0] == 'val' and parts[1] in evals
        and parts[2] in VALIDATION_METRICS, 'best_metric', c.best_metric,
        "give '' or val/<a key of config.evals>/<metric> with metric one of "
        f'{", ".join(VALIDATION_METRICS)} (config.evals: '
        f'{", ".join(evals) or "none"})')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises a ``UserError`` naming the first bad key of ``config``."""
  _check_run(config)
  _check_model(config.model)
  _check_loss(config)
  _check_optimizer(config.optimizer)
  _check_data(config)
  _check_best(config, eval_specs(config))
