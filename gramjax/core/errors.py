"""Errors that reach the user as one clear line (no traceback), and the exit
statuses every command line shares (README, "Exit statuses")."""

EXIT_OK = 0
EXIT_SOME_FAILED = 1   # The command ran, but some inputs failed (named).
EXIT_USAGE = 2         # Bad flag, config key, path or data: nothing done.
EXIT_PREEMPTED = 75    # EX_TEMPFAIL: stopped after saving; run it again.
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT) outside the training loop.


class UserError(Exception):
  """A problem the user can fix: bad config key, missing data, bad file."""


class Preempted(Exception):
  """Training stopped on SIGTERM/SIGINT or a preemption notice after saving
  a checkpoint; re-running the same command resumes from it."""

  exit_code = EXIT_PREEMPTED

  def __init__(self, step: int, reason: str):
    super().__init__(f'{reason}: saved a checkpoint at step {step}; run the '
                     'same command again to resume')
    self.step = step
