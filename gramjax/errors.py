"""Errors that reach the user as one clear line (no traceback)."""


class UserError(Exception):
  """A problem the user can fix: bad config key, missing data, bad file."""


class Preempted(Exception):
  """Training stopped on SIGTERM/SIGINT or a preemption notice after saving
  a checkpoint; re-running the same command resumes from it."""

  exit_code = 75  # EX_TEMPFAIL: try again later.

  def __init__(self, step: int, reason: str):
    super().__init__(f'{reason}: saved a checkpoint at step {step}; run the '
                     'same command again to resume')
    self.step = step
