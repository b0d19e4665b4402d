"""Training: a pure jitted ``train_step(state, batch) -> (state, metrics)``
and the loop around it, which reads top to bottom in four phases (set-up,
resume, loop, finish), each a call of one named helper.

Pixel ranges: batches hold HR crops, uint8 [0, 255]. On the device they
become the target in [-1, 1] and the LR input in [0, 1] (MATLAB bicubic
downscaling, optionally rounded to 8-bit levels like a saved LR file), as in
section IV-B of the paper (``gramjax.core.pixels.training_pair``).

Randomness: the step itself is deterministic. Crops and augmentations come
from grain's per-element RNG, seeded by ``config.seed`` and the element index
(step * batch + i), so every step's randomness is a function of the step
number, and a resumed run (which restores the iterator state) sees exactly
the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from gramjax.state import checkpoint as ckpt_lib
from gramjax import data as data_lib
from gramjax.state import distributed
from gramjax.training import validation
from gramjax.core import files
from gramjax.inference import predictor as inference
from gramjax.core import losses
from gramjax.training import monitor as monitor_lib
from gramjax.core import pixels
from gramjax.state import train_state as state_lib
from gramjax.core.errors import Preempted, UserError
from gramjax.state.train_state import TrainState


# ------------------------------------------------------------- the step --

def batch_psnr(mean: jax.Array, target: jax.Array) -> jax.Array:
  """PSNR (dB) of the mean on the batch, both in [-1, 1] (peak-to-peak 2),
  averaged over images; RGB, no shave (a training monitor only)."""
  mse = jnp.mean(jnp.square(jnp.clip(mean, -1, 1) - target), axis=(1, 2, 3))
  return jnp.mean(10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12)))


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    pixel_loss: Callable, schedule: optax.Schedule, *,
                    scale: int, round_lr: bool, attention_units: str | float,
                    ema_decay: float = 0.0, mse_warmup: int = 0
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Builds the pure step. ``batch['hr']``: uint8 HR crops (N, H, W, 3);
  optional ``batch['lr']``: their uint8 LR files (N, H/s, W/s, 3), else the
  LR is made on the device by MATLAB bicubic. With ``ema_decay`` the state's
  ``ema_params`` follow the applied parameters. The first ``mse_warmup``
  steps train with the MSE instead of ``pixel_loss`` (``mse_warmup`` of
  the beta-NLL authors' code): the mean learns first, the log-variance head
  stays where it started."""

  def loss_fn(params, model_state, batch, step):
    lr, target = pixels.training_pair(batch['hr'], scale, round_lr, jnp)
    if 'lr' in batch:
      lr = batch['lr'].astype(jnp.float32) / 255.0
    # Fresh Variables at this trace level: BatchNorm updates its statistics
    # in place, which NNX only allows on Variables made inside the trace.
    model_state = jax.tree.map(lambda x: x, model_state)
    model = nnx.merge(graphdef, params, model_state)
    mean, log_var = model(lr, train=True)
    new_model_state = nnx.state(model, nnx.BatchStat)
    loss_map = pixel_loss(mean, log_var, target)
    if mse_warmup:
      loss_map = jnp.where(step < mse_warmup,
                           losses.mse(mean, log_var, target), loss_map)
    loss = jnp.mean(loss_map)
    return loss, (mean, log_var, target, new_model_state)

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, state.model_state, batch,
                                 state.step)
    mean, log_var, target, new_model_state = aux
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # The NaN/Inf guard, on device (no host sync): a step whose loss or
    # gradients are not finite changes nothing but the counters.
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    keep = lambda new, old: jax.tree.map(
        lambda n, o: jnp.where(finite, n, o), new, old)
    ema = state.ema_params
    if ema is not None:
      ema = keep(state_lib.update_ema(ema, params, ema_decay), ema)
    new_state = state.replace(
        step=state.step + 1, params=keep(params, state.params), ema_params=ema,
        model_state=keep(new_model_state, state.model_state),
        opt_state=keep(opt_state, state.opt_state),
        bad_steps=state.bad_steps + jnp.where(finite, 0, 1),
        first_bad_step=jnp.where(
            ~finite & (state.first_bad_step < 0), state.step + 1,
            state.first_bad_step))
    log_var = jax.lax.stop_gradient(log_var)
    metrics = {
        'loss': loss,
        'nll': jnp.mean(losses.nll(mean, log_var, target)),
        'mse': jnp.mean(losses.mse(mean, log_var, target)),
        'psnr': batch_psnr(mean, target),
        'sigma_grey': jnp.mean(jnp.exp(0.5 * log_var)) * pixels.GREY_PER_UNIT,
        'log_var': jnp.mean(log_var),
        'mask': jnp.mean(losses.attention_mask(log_var, attention_units)),
        'grad_norm': optax.tree.norm(grads),
        'lr': schedule(state.step),
    }
    return new_state, metrics

  return train_step


def make_dispatch(train_step: Callable, n: int, unroll: bool = False
                  ) -> Callable:
  """``n`` training steps in one call: ``lax.scan`` of ``train_step`` over
  batches stacked on a leading axis of length ``n``; the metrics come back
  summed over the ``n`` steps (on the device). ``n == 1`` is the plain step,
  its batch without the leading axis. ``unroll`` compiles the ``n`` steps
  as one straight program: XLA:CPU runs convolutions inside a loop body
  about 10x slower than outside one (measured: docs/benchmarks.md), so the
  CPU unrolls; other backends keep the loop (compile time)."""
  if n == 1:
    return train_step

  def dispatch(state: TrainState, batches: dict):
    state, metrics = jax.lax.scan(train_step, state, batches, unroll=unroll)
    return state, jax.tree.map(lambda m: jnp.sum(m, axis=0), metrics)

  return dispatch


# ------------------------------------------------------------- policies --

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
  if config.steps_per_dispatch < 0:
    raise UserError(f'config.steps_per_dispatch={config.steps_per_dispatch}:'
                    ' must be >= 0 (0: the platform default)')
  if not isinstance(config.loss.mse_warmup, int) or config.loss.mse_warmup < 0:
    raise UserError(f'config.loss.mse_warmup={config.loss.mse_warmup!r}: '
                    'give a number of steps >= 0 (0: none)')
  if (config.loss.name == 'faithful'
      and not config.model.get('log_var_stop_gradient', False)):
    raise UserError("config.loss.name='faithful' needs "
                    'config.model.log_var_stop_gradient=True (else the '
                    "variance head's gradient reaches the mean's trunk)")
  p = tuple(config.profile_steps)
  if p and not (len(p) == 2 and all(isinstance(s, int) for s in p)
                and 0 <= p[0] < p[1]):
    raise UserError(f'config.profile_steps={p}: give () or (first, last) '
                    'with 0 <= first < last')


def steps_per_dispatch(config) -> int:
  """``config.steps_per_dispatch``, or the platform's default for 0: 1 on
  the CPU (a step there is long; measured in docs/benchmarks.md), else
  ``DISPATCH_DEFAULT`` (the GPU waits on the host at one step a call)."""
  if config.steps_per_dispatch:
    return int(config.steps_per_dispatch)
  return 1 if jax.default_backend() == 'cpu' else DISPATCH_DEFAULT


DISPATCH_DEFAULT = 8


def pixel_loss_from_config(config) -> Callable:
  """The configured per-pixel loss; a bad name or option is a UserError."""
  try:
    return losses.make_pixel_loss(config.loss.name, config.loss.options,
                                  tuple(config.loss.log_var_clip))
  except (KeyError, ValueError) as e:
    raise UserError(str(e).strip('"')) from e


def itstime(step: int, every: int, total: int) -> bool:
  """Whether a periodic action (log, checkpoint, an evaluator) falls on
  ``step``: every ``every`` steps and at the last step."""
  return step % every == 0 or step == total


def next_dispatch(step: int, k: int, total: int, everies) -> int:
  """How many steps the dispatch after ``step`` runs: ``k``, or fewer so
  that it ends on the next step where a periodic action falls (so logs,
  checkpoints and evaluations land on the same steps whatever ``k``)."""
  ends = [total] + [(step // e + 1) * e for e in everies]
  return max(1, min(k, min(ends) - step))


# ------------------------------------------------------- phase helpers --

@dataclasses.dataclass
class Run:
  """What the set-up phase builds; read-only afterwards."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  config_dict: dict
  data_iter: Any
  mesh: jax.sharding.Mesh
  recipe: state_lib.Recipe
  init_state: TrainState
  step_fn: Callable
  checkpoints: ckpt_lib.Checkpoints
  evaluators: list
  k: int
  dispatches: dict = dataclasses.field(default_factory=dict)

  def dispatch(self, n: int) -> Callable:
    """The jitted call that runs ``n`` steps (compiled once per ``n``)."""
    if n not in self.dispatches:
      replicated = NamedSharding(self.mesh, P())
      batch = NamedSharding(self.mesh, P(None, 'data') if n > 1 else
                            P('data'))
      unroll = jax.default_backend() == 'cpu'
      self.dispatches[n] = jax.jit(
          make_dispatch(self.step_fn, n, unroll),
          in_shardings=(replicated, batch),
          out_shardings=(replicated, replicated), donate_argnums=(0,))
    return self.dispatches[n]

  def batches(self, n: int) -> dict:
    """The next ``n`` global batches, stacked on a leading axis when
    ``n > 1``, assembled from this process's share."""
    local = [next(self.data_iter) for _ in range(n)]
    stacked = (local[0] if n == 1 else
               jax.tree.map(lambda *xs: np.stack(xs), *local))
    spec = P(None, 'data') if n > 1 else P('data')
    sharding = NamedSharding(self.mesh, spec)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, x),
        stacked)


def set_up(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Run:
  """Validates the config, loads the data (before any compilation, so a
  missing dataset fails fast), builds the mesh, model, optimizer and the
  jitted step."""
  validate_config(config)
  pixel_loss = pixel_loss_from_config(config)
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
  mesh = distributed.create_mesh()
  replicated = NamedSharding(mesh, P())
  evaluators = validation.evaluators_from_config(config)
  recipe = state_lib.build(config)
  logging.info('model: %s, %.3fM parameters', config.model.name,
               recipe.num_params / 1e6)
  init_state = jax.jit(recipe.init, out_shardings=replicated)(
      recipe.params, recipe.model_state)
  step_fn = make_train_step(
      recipe.graphdef, recipe.tx, pixel_loss, recipe.schedule,
      scale=config.model.scale, round_lr=config.data.round_lr,
      attention_units=config.loss.options.get('units', '[-1,1]'),
      ema_decay=recipe.ema_decay, mse_warmup=config.loss.mse_warmup)
  checkpoints = ckpt_lib.Checkpoints(
      workdir, every=config.checkpoint_every, keep=config.keep_checkpoints,
      best_metric=config.best_metric or None, best_mode=config.best_mode)
  k = steps_per_dispatch(config)
  logging.info('%d step(s) per dispatch%s', k,
               '' if config.steps_per_dispatch else
               f' (the {jax.default_backend()} default)')
  return Run(config, workdir, ckpt_lib.config_to_dict(config), data_iter,
             mesh, recipe, init_state, step_fn, checkpoints,
             evaluators, k)


def resume(run: Run, allow_config_change: bool) -> tuple[TrainState, int]:
  """The latest checkpoint's state and step (and, in place, the data
  iterator's position), or the initial state at step 0. Refuses configs the
  checkpoint cannot continue (``checkpoint.check_resume``). Writes the
  config the run goes on with to ``WORKDIR/config.json``."""
  ckpts, start = run.checkpoints, run.checkpoints.latest_step()
  state = run.init_state
  if start is not None:
    diffs = ckpt_lib.check_resume(
        ckpts.restore_config(start), run.config_dict, where=run.workdir,
        step=start, allow_config_change=allow_config_change)
    if diffs:
      logging.warning('resuming with config changes: %s', '; '.join(diffs))
    try:
      state = ckpts.restore(start, ckpt_lib.abstract_like(state),
                            run.data_iter)
    except ValueError as e:
      if not diffs:
        raise
      raise UserError(
          f'--allow_config_change: the checkpoint of step {start} in '
          f'{ckpts.directory} does not fit the new config ({"; ".join(diffs)}'
          f'): {str(e).splitlines()[0]}. A changed architecture needs a new '
          'workdir') from e
    logging.info('resumed from %s at step %d', ckpts.directory, start)
  if jax.process_index() == 0:
    files.write_text_atomic(run.workdir / 'config.json',
                            json.dumps(run.config_dict, indent=2))
  return state, start or 0


def save(run: Run, step: int, state: TrainState, *, force: bool,
         metrics: dict | None = None) -> None:
  run.checkpoints.save(step, state, run.data_iter, run.config_dict,
                       force=force, metrics=metrics)


def validate(run: Run, state: TrainState, step: int, total: int,
             watch: monitor_lib.Monitor) -> bool:
  """Runs the evaluators due at ``step`` on the current model (its EMA
  weights when kept) and logs ``val/<name>/<metric>``; a new best of
  ``config.best_metric`` is saved as a checkpoint and recorded. Returns
  whether it saved one. A model whose predictions are not finite (a run
  diverging under ``nan_policy='skip'``) is logged, not measured."""
  due = [e for e in run.evaluators if itstime(step, e.every, total)]
  if not due:
    return False
  predictor = inference.from_state(run.config, run.recipe.graphdef, state)
  values = {}
  for evaluator in due:
    try:
      values |= evaluator.run(predictor)
    except ValueError as e:
      logging.warning('validation set %s at step %d not measured: %s',
                      evaluator.name, step, e)
  if not values:
    return False
  watch.log_validation(step, values, predictor.weights)
  metric = run.config.best_metric
  if metric and metric in values and run.checkpoints.is_better(
      values[metric]):
    save(run, step, state, force=True, metrics=values)
    run.checkpoints.record_best(step, metric, values[metric])
    logging.info('best %s so far: %.4f at step %d (kept as the best '
                 'checkpoint)', metric, values[metric], step)
    return True
  return False


def finish(run: Run, state: TrainState) -> None:
  """Waits for the last checkpoint, closes everything, and super-resolves
  the config's sample images with the final model (process 0)."""
  run.checkpoints.wait()
  run.checkpoints.close()
  if jax.process_index() == 0 and run.config.data.sample_images:
    predictor = inference.from_state(run.config, run.recipe.graphdef, state)
    validation.write_samples(predictor, run.config.data.sample_images,
                             run.workdir / 'samples')
  if hasattr(run.data_iter, 'close'):
    run.data_iter.close()


# ---------------------------------------------------------------- loop --

def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | pathlib.Path, *,
                       allow_config_change: bool = False) -> TrainState:
  """Trains ``config`` in ``workdir``, resuming from its latest checkpoint,
  validating on ``config.evals`` and writing samples of the final model.

  Steps run ``config.steps_per_dispatch`` at a time; logs, checkpoints,
  evaluations and stop requests fall on dispatch boundaries, which are cut
  to land on the same steps whatever that number. Resuming with a config
  that differs from the checkpoint's (other than in
  ``checkpoint.RESUMABLE_CHANGES``) is refused, naming the keys, unless
  ``allow_config_change``. SIGTERM/SIGINT (or an orbax preemption notice)
  saves a checkpoint after the current dispatch and raises ``Preempted``.
  """
  with files.output_dir(workdir, '--workdir') as workdir:
    # -------------------------------------------------------------- set-up
    run = set_up(config, workdir)
    # -------------------------------------------------------------- resume
    state, start = resume(run, allow_config_change)
    total = config.total_steps
    if start >= total:
      logging.info('checkpoint step %d >= config.total_steps=%d: nothing to '
                   'train', start, total)
    watch = monitor_lib.Monitor(
        monitor_lib.MetricWriter(workdir, start, config.tensorboard),
        total_steps=total, nan_policy=config.nan_policy,
        bad_steps=int(distributed.local_value(state.bad_steps)))
    everies = [config.log_every, config.checkpoint_every] + [
        e.every for e in run.evaluators]
    profiler = monitor_lib.Profiler(workdir, config.profile_steps)
    last_checkpoint = lambda: (run.checkpoints.latest_step(),
                               run.checkpoints.directory)
    # ---------------------------------------------------------------- loop
    with jax.set_mesh(run.mesh), ckpt_lib.StopRequest(run.checkpoints) as stop:
      step = start
      while step < total:
        profiler.update(step, state)
        n = next_dispatch(step, run.k, total, everies)
        state, metrics = run.dispatch(n)(state, run.batches(n))
        watch.record(metrics, n)
        if step == start:
          watch.first_step_done()
        step += n
        stop_reason = stop.reason(step)
        if itstime(step, config.log_every, total) or stop_reason:
          watch.check_finite(step, state, last_checkpoint())
          watch.log(step)
        if stop_reason:
          save(run, step, state, force=True)
          raise Preempted(step, stop_reason)
        saved = validate(run, state, step, total, watch)
        if itstime(step, config.checkpoint_every, total) and not saved:
          watch.check_finite(step, state, last_checkpoint())
          save(run, step, state, force=step == total)
      profiler.stop(step, state)
    # -------------------------------------------------------------- finish
    watch.writer.close()
    finish(run, state)
  return state
