"""Entry point: ``python -m gramjax.main --config=configs/gram.py --workdir=DIR``.

Override any config key with ``--config.key=value`` (e.g.
``--config.data.train_dir=PATH --config.total_steps=3``). Re-running the same
command resumes from the latest checkpoint in DIR. Multi-host runs start the
same command in every process (see ``gramjax.distributed`` and launch/).
"""

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
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False,
    'Resume even if the config differs from the checkpoint\'s.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  # Imported here so `--help` and flag errors stay fast.
  from gramjax import cli  # pylint: disable=g-import-not-at-top
  from gramjax import distributed  # pylint: disable=g-import-not-at-top
  from gramjax import train  # pylint: disable=g-import-not-at-top

  from gramjax.errors import UserError  # pylint: disable=g-import-not-at-top

  def run():
    # config_flags loads the file and applies --config.* overrides lazily:
    # a missing file or an unknown key surfaces here, as one line.
    try:
      config = _CONFIG.value
      config.get('seed')  # A file that failed to load raises on first use.
    except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
      raise UserError(f'--config: {_one_line(e)}') from e
    # Both before anything touches a device.
    distributed.configure_cpu_devices(config.cpu_devices, config.batch_size)
    distributed.initialize()
    train.train_and_evaluate(config, _WORKDIR.value,
                             allow_config_change=_ALLOW_CONFIG_CHANGE.value)

  cli.run(run, verbose=_VERBOSE.value)


def _parse_flags(argv):
  """absl's parsing, but a config file that cannot be loaded or an unknown
  --config.* key is one line (exit 2) instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # As absl's own parser reports them.
    sys.stderr.write(f'FATAL Flags parsing error: {e}\n'
                     'Pass --helpshort or --helpfull to see help on flags.\n')
    sys.exit(1)
  except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    print(f'error: --config: {_one_line(e)}', file=sys.stderr)
    sys.exit(2)


def _one_line(e: Exception) -> str:
  """ml_collections' messages (often a quoted, nested KeyError) as one line."""
  text = str(e.args[0]) if e.args else str(e)
  text = text.replace('\\n', ' ').replace("\\'", "'")
  text = ' '.join(text.split())
  while len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':
    text = text[1:-1].strip()
  return text


if __name__ == '__main__':
  # configs/*.py import `configs.base`: make the repository root importable.
  sys.path.insert(0, os.getcwd())
  app.run(main, flags_parser=_parse_flags)
