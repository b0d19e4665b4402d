"""Entry point: ``python -m gramjax.main --config=configs/gram.py --workdir=DIR``.

Override any config key with ``--config.key=value`` after ``--config`` (e.g.
``--config.data.train_dir=PATH --config.total_steps=3``). Re-running the same
command resumes from the latest checkpoint in DIR. Multi-host runs start the
same command in every process (see ``gramjax.state.distributed`` and launch/).
"""

from absl import flags
from ml_collections import config_flags

from gramjax import cli
from gramjax.core.errors import UserError

flags.adopt_module_key_flags(cli)
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, metrics, samples.')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False,
    'Resume even if the config differs from the checkpoint\'s.')
flags.mark_flags_as_required(['config', 'workdir'])
flags.register_validator('workdir', bool,
                         '--workdir must name a folder (it is created)')


def _main() -> None:
  # config_flags loads the file and applies --config.* overrides lazily:
  # a missing file or an unknown key surfaces here, as one line.
  try:
    config = _CONFIG.value
    config.get('seed')  # A file that failed to load raises on first use.
  except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    raise UserError(f'--config: {cli.one_line(e)}') from e
  # Imported after flag parsing so `--help` and flag errors stay fast; the
  # CPU device split must happen before anything touches a device.
  from gramjax.state import config as config_lib  # pylint: disable=g-import-not-at-top
  from gramjax.state import distributed  # pylint: disable=g-import-not-at-top
  from gramjax.training import loop as train  # pylint: disable=g-import-not-at-top
  config_lib.validate(config)
  distributed.configure_cpu_devices(config.cpu_devices, config.batch_size)
  distributed.initialize()
  train.train_and_evaluate(config, _WORKDIR.value,
                           allow_config_change=_ALLOW_CONFIG_CHANGE.value)


if __name__ == '__main__':
  cli.start(_main)
