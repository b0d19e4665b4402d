"""The training loop's periodic actions, as objects with a schedule (as
clu's ``periodic_actions`` and big_vision's ``itstime``): after each
dispatch the loop asks every action whether it is ``due`` at that moment
and, if so, calls it. Each does one thing:

- ``StopOnNonFinite``: reads the on-device NaN guard (``config.nan_policy``);
- ``Log``: the averaged step metrics, to ``metrics.jsonl`` and the console;
- ``Preempt``: on a stop request, saves and raises ``Preempted``;
- ``Validate``: runs the evaluators due and logs ``val/<name>/<metric>``;
- ``Checkpoint``: saves every ``config.checkpoint_every`` steps, at the
  last step, and where validation found a new best of
  ``config.best_metric`` (orbax keeps that one by the metrics saved with it);
- ``Profile``: the ``jax.profiler`` trace of ``config.profile_steps``,
  before dispatches.

All schedules go through ``itstime``; ``next_dispatch`` cuts dispatches to
end on the steps where some action falls.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from gramjax.core.errors import Preempted


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


@dataclasses.dataclass(frozen=True)
class Moment:
  """Where the loop stands after a dispatch: the step reached, the last
  step, and why the run must stop now (a signal's name), if it must."""
  step: int
  total: int
  stop_reason: str | None = None


class PeriodicAction:
  """Runs when ``due``: every ``every`` steps and at the last step (through
  ``itstime``), and also on a stop request if ``on_stop``."""
  every: int | None = None
  on_stop: bool = False

  @property
  def everies(self) -> tuple[int, ...]:
    """The periods that dispatches must end on for this action."""
    return (self.every,) if self.every else ()

  def due(self, moment: Moment) -> bool:
    if self.on_stop and moment.stop_reason:
      return True
    return any(itstime(moment.step, e, moment.total) for e in self.everies)

  def __call__(self, moment: Moment, state) -> None:
    raise NotImplementedError


def run_due(actions: list[PeriodicAction], moment: Moment, state) -> None:
  """The one schedule helper: calls each action due at ``moment``, in
  order."""
  for action in actions:
    if action.due(moment):
      action(moment, state)


class StopOnNonFinite(PeriodicAction):
  """The NaN guard's verdict (``Monitor.check_finite``) wherever a log or a
  checkpoint falls, and before a stop: 'skip' logs the skipped steps,
  'stop' raises a ``UserError`` naming the last good checkpoint."""
  on_stop = True

  def __init__(self, watch, checkpoints, everies: tuple[int, ...]):
    self.watch, self.checkpoints, self._everies = watch, checkpoints, everies

  @property
  def everies(self) -> tuple[int, ...]:
    return self._everies

  def __call__(self, moment: Moment, state) -> None:
    self.watch.check_finite(moment.step, state, (
        self.checkpoints.latest_step(), self.checkpoints.directory))


class Log(PeriodicAction):
  """The step metrics averaged since the last log (``Monitor.log``)."""
  on_stop = True

  def __init__(self, watch, every: int):
    self.watch, self.every = watch, every

  def __call__(self, moment: Moment, state) -> None:
    self.watch.log(moment.step)


class Preempt(PeriodicAction):
  """On a stop request (SIGTERM/SIGINT, a preemption notice): saves a
  checkpoint of this step, waits for it, and raises ``Preempted``."""
  on_stop = True

  def __init__(self, save: Callable[..., None]):
    self.save = save

  def __call__(self, moment: Moment, state) -> None:
    self.save(moment.step, state, force=True)
    raise Preempted(moment.step, moment.stop_reason)


class Validate(PeriodicAction):
  """Runs the evaluators due on the current model (its EMA weights when
  kept, through ``predictor_of(state)``) and logs ``val/<name>/<metric>``;
  keeps the values for the ``Checkpoint`` of the same step. A set whose
  predictions are not finite (a run diverging under ``nan_policy='skip'``)
  is logged, not measured."""

  def __init__(self, evaluators: list, watch,
               predictor_of: Callable[[Any], Any]):
    self.evaluators, self.watch = evaluators, watch
    self.predictor_of = predictor_of
    self.step, self.values = None, {}

  @property
  def everies(self) -> tuple[int, ...]:
    return tuple(e.every for e in self.evaluators)

  def __call__(self, moment: Moment, state) -> None:
    due = [e for e in self.evaluators
           if itstime(moment.step, e.every, moment.total)]
    predictor = self.predictor_of(state)
    values = {}
    for evaluator in due:
      try:
        values |= evaluator.run(predictor)
      except ValueError as e:
        logging.warning('validation set %s at step %d not measured: %s',
                        evaluator.name, moment.step, e)
    self.step, self.values = moment.step, values
    if values:
      self.watch.log_validation(moment.step, values, predictor.weights)

  def values_at(self, step: int) -> dict:
    """The values measured at ``step`` (empty if none)."""
    return self.values if step == self.step else {}


class Checkpoint(PeriodicAction):
  """Saves every ``every`` steps and at the last step, and, with
  ``checkpoints.best_metric``, where ``validate`` measured a new best of it
  (saved at once and waited for). The values measured at that step go with
  the save: orbax keeps the best checkpoint by them."""

  def __init__(self, save: Callable[..., None], checkpoints, every: int,
               validate: Validate):
    self.save, self.checkpoints, self.every = save, checkpoints, every
    self.validate = validate

  def new_best(self, values: dict) -> bool:
    metric = self.checkpoints.best_metric
    return bool(metric and metric in values
                and self.checkpoints.is_better(values[metric]))

  def due(self, moment: Moment) -> bool:
    return super().due(moment) or self.new_best(
        self.validate.values_at(moment.step))

  def __call__(self, moment: Moment, state) -> None:
    values = self.validate.values_at(moment.step)
    best = self.new_best(values)
    self.save(moment.step, state, force=best or moment.step == moment.total,
              metrics=values or None)
    if best:
      metric = self.checkpoints.best_metric
      logging.info('best %s so far: %.4f at step %d (kept as the best '
                   'checkpoint)', metric, values[metric], moment.step)


class Profile(PeriodicAction):
  """``monitor.Profiler`` before each dispatch (``due`` until the last
  step), and ``stop`` after the loop."""

  def __init__(self, profiler):
    self.profiler = profiler

  def due(self, moment: Moment) -> bool:
    return moment.step < moment.total

  def __call__(self, moment: Moment, state) -> None:
    self.profiler.update(moment.step, state)

  def stop(self, step: int, state) -> None:
    self.profiler.stop(step, state)
