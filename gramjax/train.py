"""Training: a pure jitted ``train_step(state, batch) -> (state, metrics)``
and the loop around it (data, sharding, checkpoints, metrics, samples).

Pixel ranges: batches hold HR crops, uint8 [0, 255]. On the device they
become the target in [-1, 1] and the LR input in [0, 1] (MATLAB bicubic
downscaling, optionally rounded to 8-bit levels like a saved LR file), as in
section IV-B of the paper.

Randomness: the step itself is deterministic. Crops and augmentations come
from grain's per-element RNG, seeded by ``config.seed`` and the element index
(step * batch + i), so every step's randomness is a function of the step
number, and a resumed run (which restores the iterator state) sees exactly
the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import threading
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from gramjax import checkpoint as ckpt_lib
from gramjax import cli
from gramjax import data as data_lib
from gramjax import distributed
from gramjax import imresize
from gramjax import losses
from gramjax import metrics as metrics_lib
from gramjax import models
from gramjax import progress
from gramjax import visualize
from gramjax.errors import Preempted, UserError


@flax.struct.dataclass
class TrainState:
  """Everything the step needs; a pytree of arrays (checkpointed whole)."""
  step: jax.Array
  params: nnx.State
  model_state: nnx.State  # BatchNorm statistics (empty without BN).
  opt_state: optax.OptState
  # NaN/Inf guard: steps whose loss or gradients were not finite were not
  # applied; how many, and the first (-1: none).
  bad_steps: jax.Array
  first_bad_step: jax.Array


def make_schedule(opt_config) -> optax.Schedule:
  """Piecewise-constant learning rate: ``lr_values[i]`` from
  ``lr_boundaries[i-1]`` on (paper: 1e-4, then 1e-5 from step 2e5)."""
  values = [float(v) for v in opt_config.lr_values]
  bounds = [int(b) for b in opt_config.lr_boundaries]
  if len(values) != len(bounds) + 1:
    raise UserError(
        f'config.optimizer.lr_values has {len(values)} entries; it needs one '
        f'more than config.optimizer.lr_boundaries ({len(bounds)})')
  if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])) or (
      bounds and bounds[0] <= 0):
    raise UserError('config.optimizer.lr_boundaries must be positive and '
                    f'strictly increasing, got {tuple(bounds)}')
  return optax.join_schedules(
      [optax.constant_schedule(v) for v in values], bounds)


def make_optimizer(opt_config) -> optax.GradientTransformation:
  """Adam(b1, b2) on the schedule; optional global-norm gradient clipping."""
  tx = optax.adam(make_schedule(opt_config), b1=opt_config.b1,
                  b2=opt_config.b2, eps=opt_config.eps)
  if opt_config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx


def make_lr_hr(hr: jax.Array, scale: int, round_lr: bool = True):
  """uint8 HR crops (N, H, W, C) -> (LR in [0, 1] (N, H/s, W/s, C),
  target in [-1, 1] (N, H, W, C))."""
  hr = hr.astype(jnp.float32)
  lr = jnp.clip(imresize.imresize(hr / 255.0, 1.0 / scale, jnp), 0.0, 1.0)
  if round_lr:
    lr = jnp.round(lr * 255.0) / 255.0
  # XLA turns / 127.5 into a multiply by its reciprocal (255 -> 1 + 1e-7):
  # clip so the target is exactly in [-1, 1].
  return lr, jnp.clip(hr / 127.5 - 1.0, -1.0, 1.0)


def batch_psnr(mean: jax.Array, target: jax.Array) -> jax.Array:
  """PSNR (dB) of the mean on the batch, both in [-1, 1] (peak-to-peak 2),
  averaged over images; RGB, no shave (a training monitor only)."""
  mse = jnp.mean(jnp.square(jnp.clip(mean, -1, 1) - target), axis=(1, 2, 3))
  return jnp.mean(10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12)))


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    pixel_loss: Callable, schedule: optax.Schedule, *,
                    scale: int, round_lr: bool, attention_units: str | float
                    ) -> Callable[[TrainState, jax.Array],
                                  tuple[TrainState, dict]]:
  """Builds the pure step. ``batch['hr']``: uint8 HR crops (N, H, W, 3);
  optional ``batch['lr']``: their uint8 LR files (N, H/s, W/s, 3), else the
  LR is made on the device by MATLAB bicubic."""

  def loss_fn(params, model_state, batch):
    lr, target = make_lr_hr(batch['hr'], scale, round_lr)
    if 'lr' in batch:
      lr = batch['lr'].astype(jnp.float32) / 255.0
    # Fresh Variables at this trace level: BatchNorm updates its statistics
    # in place, which NNX only allows on Variables made inside the trace.
    model_state = jax.tree.map(lambda x: x, model_state)
    model = nnx.merge(graphdef, params, model_state)
    mean, log_var = model(lr, train=True)
    new_model_state = nnx.state(model, nnx.BatchStat)
    loss = jnp.mean(pixel_loss(mean, log_var, target))
    return loss, (mean, log_var, target, new_model_state)

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, state.model_state, batch)
    mean, log_var, target, new_model_state = aux
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # The NaN/Inf guard, on device (no host sync): a step whose loss or
    # gradients are not finite changes nothing but the counters.
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    keep = lambda new, old: jax.tree.map(
        lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = state.replace(
        step=state.step + 1, params=keep(params, state.params),
        model_state=keep(new_model_state, state.model_state),
        opt_state=keep(opt_state, state.opt_state),
        bad_steps=state.bad_steps + jnp.where(finite, 0, 1),
        first_bad_step=jnp.where(
            ~finite & (state.first_bad_step < 0), state.step + 1,
            state.first_bad_step))
    sg = jax.lax.stop_gradient
    log_var = sg(log_var)
    metrics = {
        'loss': loss,
        'nll': jnp.mean(losses.nll(mean, log_var, target)),
        'mse': jnp.mean(losses.mse(mean, log_var, target)),
        'psnr': batch_psnr(mean, target),
        'sigma_grey': jnp.mean(jnp.exp(0.5 * log_var)) * 127.5,
        'log_var': jnp.mean(log_var),
        'mask': jnp.mean(losses.attention_mask(log_var, attention_units)),
        'grad_norm': optax.tree.norm(grads),
        'lr': schedule(state.step),
    }
    return new_state, metrics

  return train_step


def model_and_state_fn(config):
  """Builds the model of ``config`` and splits it once.

  Returns ``(graphdef, params, model_state, init_state)`` where
  ``init_state(params, model_state) -> TrainState`` is pure (jit it, or
  ``jax.eval_shape`` it for the checkpoint layout).
  """
  model = models.build_model(config.model, seed=config.seed)
  graphdef, params, model_state = nnx.split(model, nnx.Param, nnx.BatchStat)
  tx = make_optimizer(config.optimizer)

  def init_state(params, model_state):
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      model_state=model_state, opt_state=tx.init(params),
                      bad_steps=jnp.zeros((), jnp.int32),
                      first_bad_step=jnp.full((), -1, jnp.int32))

  return graphdef, params, model_state, init_state


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks that do not need data; each error names the config key."""
  scale = config.model.scale
  if config.data.crop_size % scale:
    raise UserError(f'config.data.crop_size={config.data.crop_size} is not '
                    f'divisible by config.model.scale={scale}')
  if config.batch_size < 1 or config.total_steps < 0:
    raise UserError('config.batch_size must be >= 1 and config.total_steps '
                    '>= 0')
  distributed.split_batch(config.batch_size)
  if config.nan_policy not in ('stop', 'skip'):
    raise UserError(f"config.nan_policy must be 'stop' or 'skip', got "
                    f'{config.nan_policy!r}')
  if config.log_every < 1 or config.checkpoint_every < 1:
    raise UserError('config.log_every and config.checkpoint_every must be '
                    '>= 1')


def create_mesh() -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over every device of every process."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


class MetricWriter:
  """Appends metrics to WORKDIR/metrics.jsonl (and TensorBoard if present)."""

  def __init__(self, workdir: pathlib.Path, resume_step: int,
               tensorboard: bool):
    self.path = workdir / 'metrics.jsonl'
    self._truncate_after(resume_step)
    self.tb = None
    if tensorboard and jax.process_index() == 0:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self.tb = SummaryWriter(str(workdir / 'tensorboard'))
      except ImportError:
        logging.info('TensorBoard logging off: pip install tensorboardX')

  def _truncate_after(self, step: int) -> None:
    """Drops lines logged after the checkpoint we resume from, so the file
    holds each step once."""
    if not self.path.exists() or jax.process_index() != 0:
      return
    kept = []
    for line in self.path.read_text().splitlines():
      try:
        if json.loads(line)['step'] <= step:
          kept.append(line)
      except (ValueError, KeyError, TypeError):
        continue  # A line cut short by a kill.
    tmp = self.path.with_name(self.path.name + '.tmp')
    try:  # Atomic: a kill or a full disk here must not lose the history.
      tmp.write_text(''.join(l + '\n' for l in kept))
      os.replace(tmp, self.path)
    except OSError as e:
      raise UserError(f'{self.path}: cannot rewrite it on resume ({e})') from e

  def write(self, step: int, values: dict) -> None:
    if jax.process_index() != 0:
      return
    with self.path.open('a') as f:
      f.write(json.dumps({'step': step, **values}) + '\n')
    if self.tb is not None:
      for k, v in values.items():
        self.tb.add_scalar(k, v, step)
      self.tb.flush()

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


def write_samples(predictor, config, outdir: pathlib.Path) -> list[dict]:
  """Super-resolves each ``config.data.sample_images`` image and writes
  ``<stem>_mean.png``, ``<stem>_uncertainty.png`` (sigma in grey levels,
  inferno colour map) and ``<stem>_bicubic.png``; returns PSNR figures
  (the evaluation's standard convention)."""
  spec = config.data.sample_images
  if not spec:
    return []
  from gramjax import evaluate  # pylint: disable=g-import-not-at-top
  scale = config.model.scale
  outdir.mkdir(parents=True, exist_ok=True)
  results = []
  for path in data_lib.resolve_images(spec, key='config.data.sample_images',
                                      held_out=True):
    hr = evaluate.crop_to_scale(data_lib.load_image(path), scale)
    lr = evaluate.make_lr(hr, scale)
    mean, log_var = predictor(lr / 255.0)
    sr = evaluate.mean_to_uint8(mean)
    bic = evaluate.upscale_bicubic(lr, scale)
    sigma = visualize.sigma_grey_levels(log_var)
    visualize.save_png(outdir / f'{path.stem}_mean.png', sr)
    visualize.save_png(outdir / f'{path.stem}_bicubic.png', bic)
    visualize.save_png(outdir / f'{path.stem}_uncertainty.png',
                       visualize.colormap(sigma))
    grey = metrics_lib.is_greyscale_file(path)
    result = {'image': path.name,
              'psnr_y': metrics_lib.measure(sr, hr, scale=scale, grey=grey)[0],
              'psnr_y_bicubic': metrics_lib.measure(bic, hr, scale=scale,
                                                    grey=grey)[0],
              'sigma_grey_median': float(np.median(sigma)),
              'sigma_grey_p99': float(np.percentile(sigma, 99))}
    logging.info(
        'sample %s: PSNR-Y %.2f dB (bicubic %.2f dB), sigma median %.2f / '
        'p99 %.2f grey levels -> %s', path.name, result['psnr_y'],
        result['psnr_y_bicubic'], result['sigma_grey_median'],
        result['sigma_grey_p99'], outdir)
    results.append(result)
  return results


# Keys that only change how a run is watched or how long it goes on: they
# may differ from the checkpoint's config when resuming.
RESUMABLE_CHANGES = frozenset({
    'total_steps', 'log_every', 'checkpoint_every', 'keep_checkpoints',
    'tensorboard', 'nan_policy', 'data.num_threads', 'data.sample_images',
    'data.prepared_dir', 'cpu_devices'})


# Keys that change the shapes or structure of the train state: a checkpoint
# made with other values cannot be restored into it.
LAYOUT_KEYS = frozenset({
    'model.name', 'model.scale', 'model.num_blocks', 'model.channels',
    'model.in_channels', 'model.out_channels', 'model.activation',
    'model.batch_norm', 'model.first_kernel', 'model.head_kernel',
    'optimizer.grad_clip_norm'})


def config_differences(saved: dict, current: dict, prefix: str = ''
                       ) -> list[str]:
  """'key: saved -> current' for every leaf that differs (a flat list)."""
  out = []
  for key in sorted(set(saved) | set(current)):
    name = f'{prefix}{key}'
    a, b = saved.get(key, '<absent>'), current.get(key, '<absent>')
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_differences(a, b, f'{name}.')
    elif a != b and name not in RESUMABLE_CHANGES:
      out.append(f'{name}: {a!r} -> {b!r}')
  return out


class _StopRequest:
  """SIGTERM/SIGINT -> finish the step, save, exit. A second signal falls
  through to the default action (so Ctrl-C twice still kills)."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    # Several processes must stop at one agreed step: there JAX's own
    # preemption service takes SIGTERM and orbax's reached_preemption(step)
    # (checked every step) syncs the step, so no handler of ours.
    if (threading.current_thread() is threading.main_thread() and
        jax.process_count() == 1):
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    logging.warning('%s received: finishing this step and saving a '
                    'checkpoint (send it again to stop at once)',
                    self.signal_name)
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | pathlib.Path, *,
                       allow_config_change: bool = False) -> TrainState:
  """Trains ``config`` in ``workdir``, resuming from its latest checkpoint.

  Resuming with a config that differs from the checkpoint's (other than in
  ``RESUMABLE_CHANGES``) is refused, naming the keys, unless
  ``allow_config_change``. SIGTERM/SIGINT (or an orbax preemption notice)
  saves a checkpoint after the current step and raises ``Preempted``.
  """
  workdir = pathlib.Path(workdir)
  validate_config(config)
  cli.writable_dir(workdir, '--workdir')
  pixel_loss = _pixel_loss_from_config(config)
  units = config.loss.options.get('units', '[-1,1]')

  # Data first: a missing dataset should fail before any compilation.
  images, lr_images = data_lib.load_training_set(config.data,
                                                 config.model.scale)
  n_proc, proc = jax.process_count(), jax.process_index()
  local_batch, device_batch = distributed.split_batch(config.batch_size)
  logging.info('global batch %d = %d processes x %d, %d per device',
               config.batch_size, n_proc, local_batch, device_batch)
  data_iter = iter(data_lib.train_dataset(
      images, crop=config.data.crop_size, batch_size=local_batch,
      seed=config.seed, augment=config.data.augment, shard_index=proc,
      shard_count=n_proc, num_threads=config.data.num_threads,
      lr_images=lr_images, scale=config.model.scale))

  mesh = create_mesh()
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))

  graphdef, params, model_state, init_state = model_and_state_fn(config)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  logging.info('model: %s, %.3fM parameters', config.model.name, n_params / 1e6)
  tx = make_optimizer(config.optimizer)
  schedule = make_schedule(config.optimizer)
  state = jax.jit(init_state, out_shardings=replicated)(params, model_state)
  step_fn = make_train_step(graphdef, tx, pixel_loss, schedule,
                            scale=config.model.scale,
                            round_lr=config.data.round_lr,
                            attention_units=units)
  train_step = jax.jit(step_fn, in_shardings=(replicated, batch_sharding),
                       out_shardings=(replicated, replicated),
                       donate_argnums=(0,))

  ckpts = ckpt_lib.Checkpoints(workdir, every=config.checkpoint_every,
                               keep=config.keep_checkpoints)
  config_dict = ckpt_lib.config_to_dict(config)
  start = ckpts.latest_step()
  if start is not None:
    diffs = config_differences(ckpts.restore_config(start), config_dict)
    if diffs and not allow_config_change:
      raise UserError(
          f'--workdir={workdir} holds a checkpoint (step {start}) made with '
          f'a different config: {"; ".join(diffs)}. Use a new workdir, or '
          'pass --allow_config_change to resume with the new values')
    layout = [d for d in diffs if d.split(':')[0] in LAYOUT_KEYS]
    if layout:
      raise UserError(
          f'--workdir={workdir}: the checkpoint (step {start}) cannot hold '
          f'the parameters of the new config ({"; ".join(layout)}); even '
          'with --allow_config_change an architecture change needs a new '
          'workdir')
    if diffs:
      logging.warning('resuming with config changes: %s', '; '.join(diffs))
    try:
      state = ckpts.restore(start, ckpt_lib.abstract_like(state), data_iter)
    except ValueError as e:
      if not diffs:
        raise
      raise UserError(
          f'--allow_config_change: the checkpoint of step {start} in '
          f'{ckpts.directory} does not fit the new config ({"; ".join(diffs)}'
          f'): {str(e).splitlines()[0]}. A changed architecture needs a new '
          'workdir') from e
    logging.info('resumed from %s at step %d', ckpts.directory, start)
  else:
    start = 0
    (workdir / 'config.json').write_text(json.dumps(config_dict, indent=2))
  writer = MetricWriter(workdir, start, config.tensorboard)

  def save(step: int, force: bool) -> None:
    try:
      ckpts.save(step, state, data_iter, config_dict, force=force)
      if force:
        ckpts.wait()
    except Exception as e:  # Disk full, permissions, ...: say what is safe.
      raise UserError(
          f'saving the checkpoint of step {step} in {ckpts.directory} failed '
          f'({type(e).__name__}: {e}); the last complete checkpoint is step '
          f'{ckpts.latest_step()}, intact: free space and run the same '
          'command to resume from it') from e

  reported_bad = int(_local_value(state.bad_steps))

  def check_finite(step: int) -> None:
    """Host-side look at the on-device NaN guard (at log/save points)."""
    nonlocal reported_bad
    bad = int(_local_value(state.bad_steps))
    if bad == reported_bad:
      return
    first = int(_local_value(state.first_bad_step))
    if config.nan_policy == 'skip':
      logging.warning('%d step(s) with a non-finite loss or gradients were '
                      'skipped so far (first: step %d)', bad, first)
      reported_bad = bad
      return
    last = ckpts.latest_step()
    where = (f'The last good checkpoint is step {last} in {ckpts.directory}'
             if last is not None else 'No checkpoint was saved yet')
    raise UserError(
        f'non-finite loss or gradients at step {first} (not applied); '
        f'stopped at step {step}. {where}. Try a lower learning '
        'rate or --config.loss.log_var_clip="(-10.0,10.0)", or skip such '
        'steps with --config.nan_policy=skip')

  total = config.total_steps
  if start >= total:
    logging.info('checkpoint step %d >= config.total_steps=%d: nothing to '
                 'train', start, total)
  pending: list[dict] = []
  t_window, steps_window, step = time.time(), 0, start
  with jax.set_mesh(mesh), _StopRequest() as stop:
    for step in range(start + 1, total + 1):
      batch = jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(batch_sharding, x),
          next(data_iter))
      state, metrics = train_step(state, batch)
      pending.append(metrics)
      steps_window += 1
      if step == start + 1:
        jax.block_until_ready(metrics)  # Keep compilation out of steps/s.
        logging.info('compiled and ran the first step in %.1fs',
                     time.time() - t_window)
        t_window, steps_window = time.time(), 0
      preempted = stop.signal_name or (
          ckpts.manager.reached_preemption(step) and 'preemption notice')
      if step % config.log_every == 0 or step == total or preempted:
        check_finite(step)
        values = [jax.tree.map(_local_value, m) for m in pending]
        mean_metrics = {k: float(np.mean([v[k] for v in values]))
                        for k in values[0]}
        pending = []
        elapsed = time.time() - t_window
        rate = steps_window / elapsed if steps_window and elapsed > 0 else 0.0
        eta = (total - step) / rate if rate else float('nan')
        t_window, steps_window = time.time(), 0
        mean_metrics['steps_per_sec'] = rate
        try:
          writer.write(step, mean_metrics)
        except OSError as e:
          raise UserError(f'{writer.path}: cannot append metrics ({e})') from e
        logging.info(
            'step %d/%d  loss %.4g  psnr %.2f dB  sigma %.2f grey  mask %.3g'
            '  lr %.2g  |g| %.3g  %.2f steps/s  ETA %s', step, total,
            mean_metrics['loss'], mean_metrics['psnr'],
            mean_metrics['sigma_grey'], mean_metrics['mask'],
            mean_metrics['lr'], mean_metrics['grad_norm'], rate,
            progress.format_duration(eta))
      if preempted:
        save(step, force=True)
        raise Preempted(step, str(preempted))
      if step % config.checkpoint_every == 0 or step == total:
        check_finite(step)
        save(step, force=step == total)
  try:
    ckpts.wait()
  except Exception as e:
    raise UserError(f'finishing the checkpoint in {ckpts.directory} failed '
                    f'({type(e).__name__}: {e}); the last complete one is '
                    f'step {ckpts.latest_step()}') from e
  ckpts.close()
  writer.close()
  if jax.process_index() == 0:
    from gramjax import inference  # pylint: disable=g-import-not-at-top
    samples = write_samples(inference.from_state(config, graphdef, state),
                            config, workdir / 'samples')
    if samples:
      (workdir / 'samples' / 'samples.json').write_text(
          json.dumps(samples, indent=2))
  if hasattr(data_iter, 'close'):
    data_iter.close()
  return state


def _local_value(x: jax.Array) -> np.ndarray:
  """A replicated (possibly multi-process) array's value on this host."""
  return np.asarray(x.addressable_data(0))


def _pixel_loss_from_config(config) -> Callable:
  try:
    return losses.make_pixel_loss(config.loss.name, config.loss.options,
                                  tuple(config.loss.log_var_clip))
  except (KeyError, ValueError) as e:
    raise UserError(str(e).strip('"')) from e
