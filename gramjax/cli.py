"""Conventions shared by the command-line tools: quiet library logs and
bad input reported as one line (exit status 2) instead of a traceback."""

from __future__ import annotations

import logging
import pathlib
import sys
import tempfile
from typing import Callable

from gramjax.errors import Preempted, UserError

_NOISY_PATHS = ('/orbax/', '/grain/', '/jax/_src/')


def _quiet_libraries(record: logging.LogRecord) -> bool:
  """Drops orbax/grain/jax INFO chatter (they log through absl); keeps
  warnings and everything of ours."""
  return record.levelno >= logging.WARNING or not any(
      n in record.pathname for n in _NOISY_PATHS)


def run(body: Callable[[], object], *, verbose: bool) -> None:
  """Runs ``body``; a ``UserError`` becomes ``error: ...`` on stderr and exit
  status 2 (a traceback with ``verbose``, which also keeps library logs); a
  ``Preempted`` run (checkpoint saved) exits with status 75."""
  logging.getLogger('absl').setLevel(logging.INFO)
  if not verbose:
    for handler in logging.getLogger().handlers:  # absl's handler is root's.
      handler.addFilter(_quiet_libraries)
  try:
    body()
  except Preempted as e:
    print(f'stopped: {e}', file=sys.stderr)
    sys.exit(e.exit_code)
  except UserError as e:
    if verbose:
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def writable_dir(path: str | pathlib.Path, flag: str) -> pathlib.Path:
  """Creates ``path`` if needed and proves it is writable; else a
  ``UserError`` naming ``flag`` (e.g. '--workdir')."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise UserError(f'{flag}={path}: exists and is not a folder')
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise UserError(f'{flag}={path}: cannot write there ({e})') from e
  return path
