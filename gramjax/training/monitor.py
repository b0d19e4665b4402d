"""Watching a training run from the host: metrics to ``metrics.jsonl`` (and
TensorBoard), the console line with rate and ETA, and the NaN guard's
verdict. The step itself never waits on any of this: metrics are fetched
only at log points.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time

import jax
import numpy as np

from gramjax.core import files
from gramjax.core import progress
from gramjax.state.distributed import local_value
from gramjax.core.errors import UserError


def last_logged_step(path: pathlib.Path) -> int | None:
  """The last step in a ``metrics.jsonl`` (lines cut short skipped), or
  None: how far a run got, checkpointed or not."""
  last = None
  try:
    lines = path.read_text().splitlines()
  except OSError:
    return None
  for line in lines:
    try:
      last = max(int(json.loads(line)['step']), last or 0)
    except (ValueError, KeyError, TypeError):
      continue
  return last


class MetricWriter:
  """Appends metrics to WORKDIR/metrics.jsonl (and TensorBoard if present).

  The interface of ``clu.metric_writers.MetricWriter`` (``write_scalars``,
  ``flush``, ``close``), the flax ecosystem's own, so clu's writers can
  stand in; clu itself is not a dependency: importing its
  ``metric_writers`` (clu 0.0.12) imports TensorFlow.
  """

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
    try:  # Atomic: a kill or a full disk here must not lose the history.
      files.write_text_atomic(self.path, ''.join(l + '\n' for l in kept))
    except OSError as e:
      raise UserError(f'{self.path}: cannot rewrite it on resume ({e})') from e

  def write_scalars(self, step: int, values: dict) -> None:
    """One line ``{"step": step, **values}``, on process 0."""
    if jax.process_index() != 0:
      return
    try:
      with self.path.open('a') as f:
        f.write(json.dumps({'step': step, **values}) + '\n')
    except OSError as e:
      raise UserError(f'{self.path}: cannot append metrics ({e})') from e
    if self.tb is not None:
      for k, v in values.items():
        self.tb.add_scalar(k, v, step)
      self.flush()

  def flush(self) -> None:
    """Lines are written whole at each call; TensorBoard's are flushed."""
    if self.tb is not None:
      self.tb.flush()

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


class Monitor:
  """Collects the step metrics (device arrays) between log points and turns
  them into one logged line; applies ``config.nan_policy`` to the on-device
  NaN guard's counters."""

  def __init__(self, writer: MetricWriter, *, total_steps: int,
               nan_policy: str, bad_steps: int):
    self.writer, self.total, self.nan_policy = writer, total_steps, nan_policy
    self.pending: list[dict] = []
    self.reported_bad = bad_steps
    self.t_window, self.steps_window = time.time(), 0
    self.started, self.validation_seconds = time.time(), 0.0

  def record(self, metrics: dict, steps: int = 1) -> None:
    """Keeps one dispatch's metrics, summed over its ``steps`` steps on the
    device (no host sync)."""
    self.pending.append((metrics, steps))
    self.steps_window += steps

  def first_step_done(self) -> None:
    """Keeps compilation out of the steps/s figure."""
    jax.block_until_ready(self.pending[-1][0])
    logging.info('compiled and ran the first step in %.1fs',
                 time.time() - self.t_window)
    self.t_window, self.steps_window = time.time(), 0

  def check_finite(self, step: int, state, last_checkpoint) -> None:
    """Reads the NaN guard's counters: logs skipped steps ('skip'; also as
    ``skipped_steps`` and ``first_skipped_step`` in the metrics) or stops
    with a ``UserError`` naming the last good checkpoint ('stop')."""
    bad = int(local_value(state.bad_steps))
    if bad == self.reported_bad:
      return
    first = int(local_value(state.first_bad_step))
    if self.nan_policy == 'skip':
      self.writer.write_scalars(step, {'skipped_steps': bad,
                               'first_skipped_step': first})
      logging.warning('%d step(s) with a non-finite loss or gradients were '
                      'skipped so far (first: step %d)', bad, first)
      self.reported_bad = bad
      return
    step_dir, folder = last_checkpoint
    where = (f'The last good checkpoint is step {step_dir} in {folder}'
             if step_dir is not None else 'No checkpoint was saved yet')
    raise UserError(
        f'non-finite loss or gradients at step {first} (not applied); '
        f'stopped at step {step}. {where}. Try a lower learning '
        'rate or config.loss.log_var_clip=(-10.0, 10.0), or skip such '
        "steps with config.nan_policy='skip'")

  def log(self, step: int) -> dict:
    """Averages the pending metrics over their steps on the host, writes
    and prints them."""
    sums = [jax.tree.map(local_value, m) for m, _ in self.pending]
    steps = sum(n for _, n in self.pending)
    mean = {k: float(np.sum([v[k] for v in sums], dtype=np.float64) / steps)
            for k in sums[0]}
    self.pending = []
    elapsed = time.time() - self.t_window
    rate = (self.steps_window / elapsed
            if self.steps_window and elapsed > 0 else 0.0)
    eta = (self.total - step) / rate if rate else float('nan')
    self.t_window, self.steps_window = time.time(), 0
    mean['steps_per_sec'] = rate
    self.writer.write_scalars(step, mean)
    logging.info(
        'step %d/%d  loss %.4g  psnr %.2f dB  sigma %.2f grey  mask %.3g'
        '  lr %.2g  |g| %.3g  %.2f steps/s  ETA %s', step, self.total,
        mean['loss'], mean['psnr'], mean['sigma_grey'], mean['mask'],
        mean['lr'], mean['grad_norm'], rate, progress.format_duration(eta))
    return mean

  def log_validation(self, step: int, values: dict, weights: str) -> None:
    """Writes ``val/<name>/<metric>`` figures and prints them, with the
    share of the run's time spent validating so far."""
    self.writer.write_scalars(step, values)
    self.validation_seconds += sum(v for k, v in values.items()
                                   if k.endswith('/seconds'))
    share = self.validation_seconds / max(time.time() - self.started, 1e-9)
    logging.info('step %d validation (%s weights, %.1f%% of the time so '
                 'far): %s', step, weights, 100 * share,
                 '  '.join(f'{k} {v:.4g}' for k, v in values.items()))


class Profiler:
  """A ``jax.profiler`` trace of the steps ``config.profile_steps = (first,
  last)`` into WORKDIR/profile, on process 0 (``()``: off). It starts at
  the first dispatch boundary at or after ``first`` and stops at the first
  at or after ``last``; view it with TensorBoard's profile plugin or
  Perfetto (``trace.json.gz``)."""

  def __init__(self, workdir: pathlib.Path, steps):
    self.directory = workdir / 'profile'
    self.first, self.last = tuple(steps) if steps else (None, None)
    self.running = False
    if jax.process_index():
      self.first = None

  def update(self, step: int, before=None) -> None:
    """Call with the step the next dispatch starts at; ``before`` is the
    state to wait for, so the trace holds whole dispatches."""
    if self.first is None:
      return
    if not self.running and self.first <= step < self.last:
      jax.block_until_ready(before)
      jax.profiler.start_trace(str(self.directory),
                               create_perfetto_trace=True)
      self.running, self.started_at = True, step
    elif self.running and step >= self.last:
      self.stop(step, before)

  def stop(self, step: int, before=None) -> None:
    if self.running:
      jax.block_until_ready(before)
      jax.profiler.stop_trace()
      self.running, self.first = False, None
      logging.info('profiled steps %d-%d into %s', self.started_at, step,
                   self.directory)
