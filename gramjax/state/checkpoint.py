"""Orbax checkpoints of the train state, the data iterator and the config.

Layout: ``WORKDIR/checkpoints/<step>/{state,data,config}``, and, for a
checkpoint saved with validation metrics, orbax's own ``metrics`` item, from
which orbax names the best checkpoint (``best_step``). ``state`` is the
TrainState pytree, ``data`` this process's grain iterator state (so a resumed
run sees exactly the batches it would have seen), ``config`` the config the
run was started with (JSON). Saves are atomic: a run killed mid-save leaves
the previous step intact, and an unfinished ``<step>.orbax-checkpoint-tmp``
folder that the next ``Checkpoints`` removes (and reports).

Also here: the rules for resuming a workdir with a changed config, and the
preemption signals (SIGTERM/SIGINT, orbax's preemption notice) that make a
run save and stop.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import signal
import sys
import threading
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from gramjax.core.errors import UserError

TMP_SUFFIX = '.orbax-checkpoint-tmp'
# Where runs of gramjax before orbax's best-by-metrics named their best
# checkpoint (read for those workdirs; not written any more).
LEGACY_BEST_FILE = 'best.json'


def remove_unfinished(directory: pathlib.Path) -> list[str]:
  """Removes the ``<step>.orbax-checkpoint-tmp*`` folders that an
  interrupted save left in ``directory`` (process 0; the others only list
  them); returns their names, sorted."""
  if not directory.is_dir():
    return []
  stale = sorted(p for p in directory.iterdir()
                 if TMP_SUFFIX in p.name and p.is_dir())
  if jax.process_index() == 0:
    for path in stale:
      shutil.rmtree(path, ignore_errors=True)
  return [p.name for p in stale]


def _drop_read_only_notice(record: logging.LogRecord) -> bool:
  """Orbax warns of every read-only manager; reading is no news."""
  return not record.getMessage().startswith('Given directory is read only')


def _drop_no_metrics_notice(record: logging.LogRecord) -> bool:
  """Orbax warns of every save without the best metric; the regular saves
  between validations have none by design (the latest-N policy keeps
  them)."""
  return not record.getMessage().startswith('Requested `tracked_metric`')


class Checkpoints:
  """Thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, workdir: str | pathlib.Path, *, every: int = 1,
               keep: int = 1, async_save: bool = True,
               best_metric: str | None = None, best_mode: str = 'max',
               read_only: bool = False, clean_up: bool = False):
    """Keeps the latest ``keep`` checkpoints and, with ``best_metric``, the
    one saved with the best value of it (``best_mode`` 'max' or 'min'),
    through orbax's ``best_fn``. ``read_only``: only reads (nothing is
    created, saved or deleted; ``open_read_only``). ``clean_up`` (for the
    run that trains here, never a reader): first removes the unfinished
    saves of an earlier run, listed in ``removed``."""
    if best_mode not in ('max', 'min'):
      raise ValueError(f"best_mode={best_mode!r}: use 'max' or 'min'")
    self.directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    self.best_metric, self.best_mode = best_metric or None, best_mode
    # Unfinished saves of an earlier run, removed (names kept to report).
    self.removed = (remove_unfinished(self.directory)
                    if clean_up and not read_only else [])
    best_fn = None
    if self.best_metric:
      best_fn = lambda metrics: metrics[self.best_metric]
    if read_only:
      options = ocp.CheckpointManagerOptions(
          read_only=True, save_interval_steps=0, create=False,
          best_fn=best_fn, best_mode=best_mode)
    else:
      policy = cm.LatestN(n=keep)
      if best_fn:
        policy = cm.AnyPreservationPolicy([policy, cm.BestN(
            get_metric_fn=best_fn, reverse=best_mode == 'min', n=1,
            keep_checkpoints_without_metrics=False)])
      options = ocp.CheckpointManagerOptions(
          save_interval_steps=every, create=True, preservation_policy=policy,
          enable_async_checkpointing=async_save, best_fn=best_fn,
          best_mode=best_mode, keep_checkpoints_without_metrics=False)
    absl_logger = logging.getLogger('absl')
    absl_logger.addFilter(_drop_read_only_notice)
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options)
    finally:
      absl_logger.removeFilter(_drop_read_only_notice)
    # Held in memory, so that every process decides alike and a save in
    # flight (its metrics not yet on disk) counts.
    self._best = self.best()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, data_iterator, config_dict: dict,
           *, force: bool = False, metrics: dict | None = None) -> bool:
    """Saves if ``step`` is due (or ``force``, which also waits until the
    save is complete), with validation ``metrics`` if given (orbax keeps
    the best by them); returns whether it saved. A failure (disk full,
    permissions) is a ``UserError`` that names the last intact step."""
    if step in self.manager.all_steps():
      return False
    args = {'state': ocp.args.StandardSave(state),
            'config': ocp.args.JsonSave(config_dict)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    if not (self.best_metric and metrics and self.best_metric in metrics):
      metrics = None  # Orbax's best_fn needs the metric in every one.
    absl_logger = logging.getLogger('absl')
    absl_logger.addFilter(_drop_no_metrics_notice)
    try:
      saved = self.manager.save(step, args=ocp.args.Composite(**args),
                                force=force, metrics=metrics)
      if force:
        self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(
          f'saving the checkpoint of step {step} in {self.directory} failed '
          f'({type(e).__name__}: {e}); the last complete checkpoint is step '
          f'{self.latest_step()}, intact: free space and run the same '
          'command to resume from it') from e
    finally:
      absl_logger.removeFilter(_drop_no_metrics_notice)
    if saved and metrics and self.is_better(metrics[self.best_metric]):
      self._best = {'step': step, 'metric': self.best_metric,
                    'value': float(metrics[self.best_metric]),
                    'mode': self.best_mode}
    return saved

  def restore(self, step: int, abstract_state: Any, data_iterator=None):
    """Restores the state (onto the shardings of ``abstract_state``) and, in
    place, the data iterator."""
    args = {'state': ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return out['state']

  def restore_config(self, step: int) -> dict:
    out = self.manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return dict(out['config'])

  def best(self) -> dict | None:
    """``{'step', 'metric', 'value', 'mode'}`` of the best checkpoint by
    orbax's metrics, or None (no ``best_metric``, or none saved with it)."""
    if getattr(self, '_best', None) is not None:
      return self._best
    if not self.best_metric:
      return None
    step = self.manager.best_step()
    metrics = self.manager.metrics(step) if step is not None else None
    if not metrics or self.best_metric not in metrics:
      return self._legacy_best()
    return {'step': step, 'metric': self.best_metric,
            'value': float(metrics[self.best_metric]), 'mode': self.best_mode}

  def _legacy_best(self) -> dict | None:
    """The ``WORKDIR/best.json`` that gramjax wrote before orbax kept the
    best by its metrics (read, never written), if it names this
    ``best_metric`` and mode and a checkpoint that still exists."""
    try:
      best = json.loads((self.directory.parent / LEGACY_BEST_FILE).read_text())
      step, value = int(best['step']), float(best['value'])
    except (OSError, ValueError, KeyError, TypeError):
      return None
    if (best.get('metric') != self.best_metric
        or best.get('mode', 'max') != self.best_mode
        or step not in self.manager.all_steps()):
      return None
    return {'step': step, 'metric': self.best_metric, 'value': value,
            'mode': self.best_mode}

  def is_better(self, value: float) -> bool:
    """Whether ``value`` beats the best checkpoint's (any value, if none)."""
    best = self.best()
    if best is None:
      return True
    return (value > best['value'] if self.best_mode == 'max'
            else value < best['value'])

  def wait(self) -> None:
    """Waits for a save in flight; its failure is a ``UserError``."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f'finishing the checkpoint in {self.directory} failed '
                      f'({type(e).__name__}: {e}); the last complete one is '
                      f'step {self.latest_step()}') from e

  def close(self) -> None:
    self.manager.close()


def open_read_only(workdir: str | pathlib.Path) -> Checkpoints:
  """The checkpoints of ``workdir`` for reading (orbax ``read_only``:
  nothing is created, saved, deleted or cleaned up), tracking the best by
  the ``best_metric``/``best_mode`` of the latest checkpoint's config.
  Close it after use."""
  ckpts = Checkpoints(workdir, read_only=True)
  latest = ckpts.latest_step()
  if latest is None:
    return ckpts
  config = ckpts.restore_config(latest)
  if not config.get('best_metric'):
    return ckpts
  ckpts.close()
  return Checkpoints(workdir, read_only=True,
                     best_metric=config['best_metric'],
                     best_mode=config.get('best_mode', 'max'))


def best_step(workdir: str | pathlib.Path) -> int | None:
  """The step of ``workdir``'s best checkpoint by its config's
  ``best_metric`` (orbax's metrics), or None where none was kept."""
  ckpts = open_read_only(workdir)
  try:
    best = ckpts.best()
  finally:
    ckpts.close()
  return None if best is None else best['step']


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) for restoring onto ``tree``'s layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


# ------------------------------------------------------ resuming a workdir --

# Keys that only change how a run is watched or how long it goes on, or
# only how parameters start (model.icnr): they may differ from the
# checkpoint's config when resuming.
RESUMABLE_CHANGES = frozenset({
    'total_steps', 'log_every', 'checkpoint_every', 'keep_checkpoints',
    'tensorboard', 'nan_policy', 'data.num_threads', 'data.sample_images',
    'data.prepared_dir', 'cpu_devices', 'steps_per_dispatch', 'evals',
    'best_metric', 'best_mode', 'model.icnr', 'profile_steps'})

# Keys that change the shapes or structure of the train state: a checkpoint
# made with other values cannot be restored into it.
LAYOUT_KEYS = frozenset({
    'model.name', 'model.scale', 'model.num_blocks', 'model.channels',
    'model.in_channels', 'model.out_channels', 'model.activation',
    'model.batch_norm', 'model.first_kernel', 'model.head_kernel',
    'optimizer.grad_clip_norm'})

# Keys added after checkpoints were written without them, with the value
# that means what those runs did: absent == this value is no change.
ADDED_LATER = {'ema_decay': 0.0, 'model.shuffle_blur': False,
               'profile_steps': (), 'loss.mse_warmup': 0, 'data.holdout': 0,
               'model.log_var_stop_gradient': False}


def config_differences(saved: dict, current: dict, prefix: str = ''
                       ) -> list[str]:
  """'key: saved -> current' for every leaf that differs, except the
  ``RESUMABLE_CHANGES`` (a flat list)."""
  out = []
  for key in sorted(set(saved) | set(current)):
    name = f'{prefix}{key}'
    a, b = saved.get(key, '<absent>'), current.get(key, '<absent>')
    if a == '<absent>' and name in ADDED_LATER and b == ADDED_LATER[name]:
      continue
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_differences(a, b, f'{name}.')
    elif a != b and not any(name == k or name.startswith(k + '.')
                            for k in RESUMABLE_CHANGES):
      out.append(f'{name}: {a!r} -> {b!r}')
  return out


def check_resume(saved: dict, current: dict, *, where: str, step: int,
                 allow_config_change: bool) -> list[str]:
  """The rules for resuming ``where`` (a workdir) at ``step`` with config
  ``current``: returns the differences that are allowed (to log), or raises
  a ``UserError`` naming the keys: any difference needs
  ``allow_config_change``, and a layout change is never possible."""
  diffs = config_differences(saved, current)
  if diffs and not allow_config_change:
    raise UserError(
        f'the workdir {where} holds a checkpoint (step {step}) made with '
        f'a different config: {"; ".join(diffs)}. Use a new workdir, or '
        'allow_config_change to resume with the new values')
  layout = [d for d in diffs if d.split(':')[0] in LAYOUT_KEYS]
  if layout:
    raise UserError(
        f'the workdir {where}: the checkpoint (step {step}) cannot hold '
        f'the parameters of the new config ({"; ".join(layout)}); even '
        'with allow_config_change an architecture change needs a new '
        'workdir')
  return diffs


# ----------------------------------------------------------- preemption --

class StopRequest:
  """SIGTERM/SIGINT -> finish the step, save, exit. A second signal stops
  at once, with one line and status 128 + its number (130 for Ctrl-C): the
  save in flight, if any, is dropped (its ``.orbax-checkpoint-tmp`` folder is
  removed by the next run, which says how many steps it lost).

  With several processes, JAX's preemption service takes SIGTERM instead
  and orbax's ``reached_preemption(step)`` makes every process stop at one
  agreed step; ``reason(step)`` asks both.
  """

  def __init__(self, checkpoints: Checkpoints):
    self.checkpoints = checkpoints
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    if (threading.current_thread() is threading.main_thread() and
        jax.process_count() == 1):
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is None:
      self.signal_name = name
      logging.warning('%s received: finishing this step and saving a '
                      'checkpoint (send it again to stop at once)', name)
      return
    self.stop_at_once(name, 128 + signum)

  def stop_at_once(self, name: str, status: int) -> None:
    """The second signal: one line, then exit without unwinding (which
    would print the tracebacks of orbax's threads mid-save)."""
    sys.stderr.write(
        f'{name} received again: stopped at once (status {status}), '
        'dropping any checkpoint not yet complete; the last complete one in '
        f'{self.checkpoints.directory} is intact: run the same command '
        'again to go on from it\n')
    sys.stderr.flush()
    for handler in logging.getLogger().handlers:
      handler.flush()
    os._exit(status)  # pylint: disable=protected-access

  def reason(self, step: int) -> str | None:
    """Why to stop after ``step`` (a signal's name or 'preemption notice'),
    or None to go on."""
    if self.signal_name:
      return self.signal_name
    if self.checkpoints.manager.reached_preemption(step):
      return 'preemption notice'
    return None

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
