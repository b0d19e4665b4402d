"""Orbax checkpoints of the train state, the data iterator and the config.

Layout: ``WORKDIR/checkpoints/<step>/{state,data,config}``, and
``WORKDIR/best.json`` naming the best checkpoint by a validation metric. ``state`` is the
TrainState pytree, ``data`` this process's grain iterator state (so a resumed
run sees exactly the batches it would have seen), ``config`` the config the
run was started with (JSON). Saves are atomic: a run killed mid-save leaves
the previous step intact.

Also here: the rules for resuming a workdir with a changed config, and the
preemption signals (SIGTERM/SIGINT, orbax's preemption notice) that make a
run save and stop.
"""

from __future__ import annotations

import json
import logging
import pathlib
import signal
import threading
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

from gramjax.core import files
from gramjax.core.errors import UserError

BEST_FILE = 'best.json'


class Checkpoints:
  """Thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, workdir: str | pathlib.Path, *, every: int, keep: int,
               async_save: bool = True, best_metric: str | None = None,
               best_mode: str = 'max'):
    """Keeps the latest ``keep`` checkpoints and, with ``best_metric``, the
    one saved with the best value of it (``best_mode`` 'max' or 'min')."""
    if best_mode not in ('max', 'min'):
      raise UserError(f"config.best_mode={best_mode!r}: use 'max' or 'min'")
    self.directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    self.best_path = self.directory.parent / BEST_FILE
    self.best_mode = best_mode
    # Held in memory, so that every process decides alike (only process 0
    # writes the file, which the others may see late).
    self._best = self.best()
    policy = cm.LatestN(n=keep)
    if best_metric:
      policy = cm.AnyPreservationPolicy([policy, cm.BestN(
          get_metric_fn=lambda metrics: metrics[best_metric],
          reverse=best_mode == 'min', n=1,
          keep_checkpoints_without_metrics=False)])
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=every, create=True, preservation_policy=policy,
            enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, data_iterator, config_dict: dict,
           *, force: bool = False, metrics: dict | None = None) -> bool:
    """Saves if ``step`` is due (or ``force``, which also waits until the
    save is complete), with validation ``metrics`` if given; returns whether
    it saved. A failure (disk full, permissions) is a ``UserError`` that
    names the last intact step."""
    if step in self.manager.all_steps():
      return False
    args = {'state': ocp.args.StandardSave(state),
            'config': ocp.args.JsonSave(config_dict)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
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
    """``{'step', 'metric', 'value'}`` of the best checkpoint, or None."""
    try:
      return json.loads(self.best_path.read_text())
    except (OSError, ValueError):
      return None

  def is_better(self, value: float) -> bool:
    """Whether ``value`` beats the recorded best (any value, if none)."""
    best = self._best
    if best is None:
      return True
    return (value > best['value'] if self.best_mode == 'max'
            else value < best['value'])

  def record_best(self, step: int, metric: str, value: float) -> None:
    """Records ``step`` as the best checkpoint (``WORKDIR/best.json``)."""
    self._best = {'step': step, 'metric': metric, 'value': value,
                  'mode': self.best_mode}
    if jax.process_index() == 0:
      files.write_text_atomic(self.best_path,
                              json.dumps(self._best, indent=2))

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
        f'--workdir={where} holds a checkpoint (step {step}) made with '
        f'a different config: {"; ".join(diffs)}. Use a new workdir, or '
        'pass --allow_config_change to resume with the new values')
  layout = [d for d in diffs if d.split(':')[0] in LAYOUT_KEYS]
  if layout:
    raise UserError(
        f'--workdir={where}: the checkpoint (step {step}) cannot hold '
        f'the parameters of the new config ({"; ".join(layout)}); even '
        'with --allow_config_change an architecture change needs a new '
        'workdir')
  return diffs


# ----------------------------------------------------------- preemption --

class StopRequest:
  """SIGTERM/SIGINT -> finish the step, save, exit. A second signal falls
  through to the default action (so Ctrl-C twice still kills).

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
    self.signal_name = signal.Signals(signum).name
    logging.warning('%s received: finishing this step and saving a '
                    'checkpoint (send it again to stop at once)',
                    self.signal_name)
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

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
