"""Training: the loop around the jitted step (``gramjax.training.step``),
which reads top to bottom in banner-marked phases (set-up, resume, loop,
finish), each a few lines calling named helpers; the periodic actions
after each dispatch are ``gramjax.training.actions``.

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
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from gramjax import data as data_lib
from gramjax.core import files
from gramjax.data import heldout
from gramjax.core import losses
from gramjax.core.errors import UserError
from gramjax.inference import predictor as inference
from gramjax.state import checkpoint as ckpt_lib
from gramjax.state import config as config_lib
from gramjax.state import distributed
from gramjax.state import train_state as state_lib
from gramjax.training import actions
from gramjax.training import monitor as monitor_lib
from gramjax.training import validation
# Re-exported: the step and the schedule, as ``loop.<name>``.
from gramjax.training.actions import itstime, next_dispatch  # noqa: F401
from gramjax.training.step import (  # noqa: F401
    batch_psnr, make_dispatch, make_train_step)
from gramjax.state.train_state import TrainState


# ------------------------------------------------------------- policies --

def steps_per_dispatch(config) -> int:
  """``config.steps_per_dispatch``, or the platform's default for 0: 1 on
  the CPU (a step there is long; measured in docs/benchmarks.md), else
  ``DISPATCH_DEFAULT`` (the GPU waits on the host at one step a call)."""
  if config.steps_per_dispatch:
    return int(config.steps_per_dispatch)
  return 1 if jax.default_backend() == 'cpu' else DISPATCH_DEFAULT


DISPATCH_DEFAULT = 8


def pixel_loss_from_config(config) -> Callable:
  """The configured per-pixel loss (``config.validate`` checked its keys)."""
  return losses.make_pixel_loss(config.loss.name, config.loss.options,
                                tuple(config.loss.log_var_clip))


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
  config_lib.validate(config)
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
      best_metric=config.best_metric or None, best_mode=config.best_mode,
      clean_up=True)
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
  checkpoint cannot continue (``checkpoint.check_resume``). Reports the
  unfinished saves removed and the steps trained since the checkpoint (lost,
  trained again). Writes the config the run goes on with to
  ``WORKDIR/config.json``, and the held-out images to
  ``WORKDIR/heldout.json`` (``data.heldout``)."""
  ckpts, start = run.checkpoints, run.checkpoints.latest_step()
  report_lost(run, start)
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
          f'allow_config_change: the checkpoint of step {start} in '
          f'{ckpts.directory} does not fit the new config ({"; ".join(diffs)}'
          f'): {str(e).splitlines()[0]}. A changed architecture needs a new '
          'workdir') from e
    logging.info('resumed from %s at step %d', ckpts.directory, start)
  if jax.process_index() == 0:
    files.write_text_atomic(run.workdir / 'config.json',
                            json.dumps(run.config_dict, indent=2))
    heldout.record(run.workdir, run.config.data)
  return state, start or 0


def report_lost(run: Run, start: int | None) -> None:
  """Warns about the unfinished checkpoint folders removed at start-up (an
  interrupted save) and the steps logged in ``metrics.jsonl`` after the
  checkpoint the run goes on from: those are lost and trained again."""
  ckpts = run.checkpoints
  if ckpts.removed:
    logging.warning('removed %s from %s: unfinished checkpoint(s) of an '
                    'interrupted save', ', '.join(ckpts.removed),
                    ckpts.directory)
  reached = monitor_lib.last_logged_step(run.workdir / 'metrics.jsonl')
  if reached is not None and reached > (start or 0):
    where = (f'the last complete checkpoint, step {start}' if start is not None
             else 'step 0 (no complete checkpoint)')
    logging.warning('the previous run had reached step %d: going on from %s, '
                    '%d step(s) are lost and trained again', reached, where,
                    reached - (start or 0))


def save(run: Run, step: int, state: TrainState, *, force: bool,
         metrics: dict | None = None) -> None:
  run.checkpoints.save(step, state, run.data_iter, run.config_dict,
                       force=force, metrics=metrics)


def start_watching(run: Run, state: TrainState, start: int
                   ) -> monitor_lib.Monitor:
  """The monitor of the run from ``start`` (``metrics.jsonl`` cut back to
  it); notes when there is nothing to train."""
  total = run.config.total_steps
  if start >= total:
    logging.info('checkpoint step %d >= config.total_steps=%d: nothing to '
                 'train', start, total)
  return monitor_lib.Monitor(
      monitor_lib.MetricWriter(run.workdir, start, run.config.tensorboard),
      total_steps=total, nan_policy=run.config.nan_policy,
      bad_steps=int(distributed.local_value(state.bad_steps)))


def periodic_actions(run: Run, watch: monitor_lib.Monitor
                     ) -> list[actions.PeriodicAction]:
  """What the loop does after a dispatch, in this order (``actions``)."""
  config = run.config
  checkpoint_save = lambda *a, **k: save(run, *a, **k)
  validate = actions.Validate(
      run.evaluators, watch,
      lambda state: inference.from_state(config, run.recipe.graphdef, state))
  return [
      actions.StopOnNonFinite(watch, run.checkpoints,
                              (config.log_every, config.checkpoint_every)),
      actions.Log(watch, config.log_every),
      actions.Preempt(checkpoint_save),
      validate,
      actions.Checkpoint(checkpoint_save, run.checkpoints,
                         config.checkpoint_every, validate),
  ]


def train_steps(run: Run, state: TrainState, step: int, start: int,
                watch: monitor_lib.Monitor, everies) -> tuple[TrainState, int]:
  """One dispatch: the steps up to the next step where an action falls."""
  n = next_dispatch(step, run.k, run.config.total_steps, everies)
  state, metrics = run.dispatch(n)(state, run.batches(n))
  watch.record(metrics, n)
  if step == start:
    watch.first_step_done()
  return state, step + n


def finish(run: Run, state: TrainState, watch: monitor_lib.Monitor) -> None:
  """Closes the metrics, waits for the last checkpoint, closes everything,
  and super-resolves the config's sample images with the final model
  (process 0)."""
  watch.writer.close()
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

  Steps run ``config.steps_per_dispatch`` at a time; the periodic actions
  (``gramjax.training.actions``: log, validate, checkpoint, profile, stop on
  non-finite) fall on dispatch boundaries, which are cut to land on the
  same steps whatever that number. Resuming with a config that differs
  from the checkpoint's (other than in ``checkpoint.RESUMABLE_CHANGES``) is
  refused, naming the keys, unless ``allow_config_change``. SIGTERM/SIGINT
  (or an orbax preemption notice) saves a checkpoint after the current
  dispatch and raises ``Preempted``.
  """
  with files.output_dir(workdir, 'workdir') as workdir:
    # -------------------------------------------------------------- set-up
    run = set_up(config, workdir)
    # -------------------------------------------------------------- resume
    state, start = resume(run, allow_config_change)
    watch = start_watching(run, state, start)
    after_dispatch = periodic_actions(run, watch)
    everies = [e for a in after_dispatch for e in a.everies]
    profile = actions.Profile(monitor_lib.Profiler(workdir,
                                                   config.profile_steps))
    # ---------------------------------------------------------------- loop
    total, step = config.total_steps, start
    with jax.set_mesh(run.mesh), ckpt_lib.StopRequest(run.checkpoints) as stop:
      while step < total:
        actions.run_due([profile], actions.Moment(step, total), state)
        state, step = train_steps(run, state, step, start, watch, everies)
        moment = actions.Moment(step, total, stop.reason(step))
        actions.run_due(after_dispatch, moment, state)
      profile.stop(step, state)
    # -------------------------------------------------------------- finish
    finish(run, state, watch)
  return state
