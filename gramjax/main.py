"""Entry point: ``python -m gramjax.main --config=configs/gram.py --workdir=DIR``.

Override any config key with ``--config.key=value`` (e.g.
``--config.data.train_dir=PATH --config.total_steps=3``). Re-running the same
command resumes from the latest checkpoint in DIR.
"""

import logging
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, metrics, samples.')
_VERBOSE = flags.DEFINE_bool('verbose', False,
                             'Show tracebacks for configuration/data errors.')
flags.mark_flags_as_required(['config', 'workdir'])


def _quiet_libraries(record: logging.LogRecord) -> bool:
  """Drops orbax/grain INFO chatter (they log through absl); keeps warnings."""
  noisy = ('/orbax/', '/grain/', '/jax/_src/')
  return record.levelno >= logging.WARNING or not any(
      n in record.pathname for n in noisy)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # Imported here so `--help` and flag errors stay fast.
  from gramjax import train  # pylint: disable=g-import-not-at-top
  from gramjax.errors import UserError  # pylint: disable=g-import-not-at-top
  logging.getLogger('absl').setLevel(logging.INFO)
  if not _VERBOSE.value:
    for handler in logging.getLogger().handlers:  # absl's handler is root's.
      handler.addFilter(_quiet_libraries)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    if _VERBOSE.value:
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  # configs/*.py import `configs.base`: make the repository root importable.
  sys.path.insert(0, os.getcwd())
  app.run(main)
