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

  def run():
    distributed.initialize()  # Before anything touches a device.
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             allow_config_change=_ALLOW_CONFIG_CHANGE.value)

  cli.run(run, verbose=_VERBOSE.value)


if __name__ == '__main__':
  # configs/*.py import `configs.base`: make the repository root importable.
  sys.path.insert(0, os.getcwd())
  app.run(main)
