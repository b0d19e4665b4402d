"""What every command line shares: one flag framework (absl), one-line
errors and one table of exit statuses (``gramjax.core.errors``).

A command module defines its flags, calls ``flags.adopt_module_key_flags(
cli)`` (so ``--help`` lists the shared ones) and ends with
``cli.start(body)``: ``body()`` runs with flags parsed and returns nothing or
an exit status. Bad flags, a config file that does not load, an unknown
``--config.*`` key and every ``UserError`` become one ``error:`` line and
exit status 2 (``--verbose``: a traceback and the library logs).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Callable

from absl import app
from absl import flags

from gramjax.metrics import recalibration
from gramjax.metrics.luma import CORRELATION_RANGE
from gramjax.metrics.quality import CONVENTIONS
from gramjax.core.errors import (EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                                 Preempted, UserError)

VERBOSE = flags.DEFINE_bool('verbose', False,
                            'Show tracebacks and library logs.')

_NOISY_PATHS = ('/orbax/', '/grain/', '/jax/_src/')
_HELP_FLAGS = ('--help', '-help', '-h', '-?', '--helpshort', '--helpfull',
               '--helpxml')


def define_eval_flags() -> None:
  """Flags shared by ``gramjax.evaluate`` and ``gramjax.report``."""
  flags.DEFINE_string('data', None,
                      'HR image folder(s), comma-separated (e.g. '
                      '../shared/data/Set5,../shared/data/Set14).')
  flags.DEFINE_integer('scale', 4, 'Upscaling factor; must match the '
                       "model's (default: the model's for --workdir).")
  flags.DEFINE_enum('convention', 'standard', list(CONVENTIONS),
                    'How PSNR/SSIM are measured: standard (Y, shave = '
                    'scale, 11x11 Gaussian SSIM; paper Table I) or '
                    'official_code (Y, 10 px shave, 7x7 uniform SSIM).')
  flags.DEFINE_integer('tile', 128, 'LR tile size for the model (0: whole '
                       'image at once).', lower_bound=0)
  flags.DEFINE_enum('aggregation', 'pooled', ['pooled', 'per_image'],
                    "A folder's uncertainty figures: pooled over all its "
                    'pixels (as the reference code of the calibration '
                    'literature does) or per_image means.')
  flags.DEFINE_float('y_correlation', None,
                     "Correlation of the R, G and B errors assumed for the Y "
                     "channel's variance, in [-0.5, 1]: 1 (the default) "
                     'adds the channel sigmas, 0 treats the errors as '
                     'independent. With a calibration, the one measured on '
                     'its images is used instead. The RGB figures do not '
                     'depend on it.', lower_bound=CORRELATION_RANGE[0],
                     upper_bound=CORRELATION_RANGE[1])
  define_recalibrate_flag()


def define_step_flag():
  """``--step``, shared by evaluate and predict (the library parses it)."""
  return flags.DEFINE_string('step', None, 'Checkpoint step: a number, or '
                             "best (by the run's validation metric); "
                             'default: latest.')


def stored_calibration(workdir: str, model_key: dict, use: bool):
  """The workdir's calibration for these weights (None: none, or
  ``--norecalibrate``); one fitted on other weights is one error line that
  says how to go on."""
  try:
    return recalibration.for_model(workdir, model_key, use)
  except recalibration.StaleCalibration as e:
    raise stale_calibration(e, workdir) from e


def stale_calibration(e: Exception, workdir: str = 'W') -> UserError:
  """``recalibration.StaleCalibration`` as a command's error line."""
  return UserError(f'{e} Fit it again (python -m gramjax.evaluate '
                   f'--workdir={workdir} --calibrate_on=DIR), or pass '
                   '--norecalibrate')


def define_recalibrate_flag() -> None:
  """``--recalibrate``, shared by evaluate, report and predict."""
  flags.DEFINE_bool('recalibrate', True,
                    "Use the workdir's stored recalibration "
                    '(calibration.json, from evaluate --calibrate_on) when '
                    'it was fitted at the checkpoint used; --norecalibrate: '
                    'the raw sigma.')


def given_kwargs(*names: str) -> dict:
  """``{name: value}`` of the flags given on the command line (the library's
  defaults stand for the others)."""
  return {n: flags.FLAGS[n].value for n in names if flags.FLAGS[n].present}


def given(name: str):
  """A flag's value if it was given on the command line, else None."""
  return flags.FLAGS[name].value if flags.FLAGS[name].present else None


def usage_error(message: str) -> None:
  """Prints ``error: message`` and exits with the usage status."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(EXIT_USAGE)


def one_line(e: BaseException) -> str:
  """An exception's message (often a quoted, nested KeyError from
  ml_collections) as one line."""
  text = str(e.args[0]) if e.args else str(e)
  if 'Traceback (most recent call last)' in text:
    # ml_collections quotes a failing config file's whole traceback: keep
    # its context and the exception's own line.
    head = text.split('Traceback (most recent call last)')[0].rstrip(': \n')
    text = f'{head}: {[l for l in text.splitlines() if l.strip()][-1]}'
  text = text.replace('\\n', ' ').replace("\\'", "'")
  text = ' '.join(text.split())
  while len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    text = text[1:-1].strip()
  return text


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with every mistake one ``error:`` line, status 2
  (and ``--help``, which absl ends with status 1, ending with 0)."""
  try:
    rest = flags.FLAGS(argv)
  except SystemExit as e:
    helped = any(a.split('=')[0] in _HELP_FLAGS for a in argv[1:])
    sys.exit(EXIT_OK if helped and e.code == 1 else e.code)
  except flags.UnrecognizedFlagError as e:
    hint = ''
    if e.flagname.startswith('config.') and 'config' in flags.FLAGS:
      hint = ('; --config.KEY=VALUE overrides need --config=FILE first, and '
              'KEY must exist in that config')
    usage_error(f'{one_line(e)}{hint} (--help lists the flags)')
  except flags.IllegalFlagValueError as e:
    missing = re.findall(r'Flag --(\w+) must have a value other than None',
                         str(e))
    usage_error(required_message(missing) if missing else
                f'{one_line(e)} (--help lists the flags)')
  except flags.Error as e:
    usage_error(f'{one_line(e)} (--help lists the flags)')
  except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    # ml_collections' config_flags: a file that does not load, a bad key.
    usage_error(f'--config: {one_line(e)}')
  if len(rest) > 1:
    usage_error(f'unexpected arguments {rest[1:]}: every input is a flag, '
                '--name=value (--help lists them)')
  return rest


def required_message(names: list[str]) -> str:
  """One line for required flags left out: each with its help text."""
  def what(name):
    text = flags.FLAGS[name].help.rstrip('.')
    return text[:1].lower() + text[1:]
  return '; '.join(f'--{n} is required: {what(n)}'
                   for n in dict.fromkeys(names)) + ' (--help lists the flags)'


def _quiet_libraries(record: logging.LogRecord) -> bool:
  """Drops orbax/grain/jax INFO chatter (they log through absl); keeps
  warnings and everything of ours."""
  return record.levelno >= logging.WARNING or not any(
      n in record.pathname for n in _NOISY_PATHS)


def run(body: Callable[[], int | None], *, verbose: bool) -> int:
  """Runs ``body`` and returns its exit status: a ``UserError`` becomes
  ``error: ...`` on stderr and status 2 (raised again with ``verbose``); a
  ``Preempted`` run (checkpoint saved) is status 75; Ctrl-C outside the
  training loop (which saves first, see ``checkpoint.StopRequest``) is one
  line and status 130."""
  logging.getLogger('absl').setLevel(logging.INFO)
  if not verbose:
    for handler in logging.getLogger().handlers:  # absl's handler is root's.
      handler.addFilter(_quiet_libraries)
  try:
    status = body()
    return status if isinstance(status, int) else EXIT_OK
  except Preempted as e:
    print(f'stopped: {e}', file=sys.stderr)
    return e.exit_code
  except UserError as e:
    if verbose:
      raise
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  except KeyboardInterrupt:
    if verbose:
      raise
    print('interrupted (Ctrl-C): finished outputs and checkpoints are '
          'intact; run the same command again to go on', file=sys.stderr)
    return EXIT_INTERRUPTED


def start(body: Callable[[], int | None]) -> None:
  """The ``if __name__ == '__main__'`` of every command: parses the flags,
  runs ``body`` under ``run`` and exits with its status."""
  # configs/*.py import `configs.base`: make the repository root importable.
  sys.path.insert(0, os.getcwd())
  app.run(lambda argv: sys.exit(run(body, verbose=VERBOSE.value)),
          flags_parser=parse_flags)
