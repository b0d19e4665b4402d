"""The command lines end to end: one flag framework, one-line errors with
one table of exit statuses (README, docs/failures.md), help that lists every flag a command
takes, and nothing left behind by a run that failed.

Each command's own behaviour is tested beside its library (test_evaluation
for evaluate/report, test_predict, test_download, test_data_prepared for
prepare, test_train/test_robustness for main); here are the conventions
they share.
"""

import pytest

from gramjax.core import errors
from tests.conftest import error_lines, run_module

COMMANDS = ('main', 'evaluate', 'predict', 'report', 'prepare', 'download')


def one_error_line(r) -> str:
  assert 'Traceback' not in r.stderr and 'FATAL' not in r.stderr, r.stderr
  lines = error_lines(r.stderr)
  assert len(lines) == 1, r.stderr
  return lines[0]


def test_exit_statuses_are_the_documented_ones():
  assert (errors.EXIT_OK, errors.EXIT_SOME_FAILED, errors.EXIT_USAGE,
          errors.EXIT_PREEMPTED, errors.EXIT_INTERRUPTED) == (0, 1, 2, 75, 130)
  assert errors.Preempted(3, 'SIGTERM').exit_code == errors.EXIT_PREEMPTED


@pytest.mark.parametrize('command', COMMANDS)
def test_help_lists_the_shared_and_own_flags(command):
  r = run_module(command, '--help', timeout=120)
  assert r.returncode == 0, r.stderr
  text = r.stdout + r.stderr
  assert '--[no]verbose' in text
  own = {'main': '--workdir', 'evaluate': '--data', 'report': '--data',
         'predict': '--input', 'prepare': '--lr_dir', 'download': '--dest'}
  assert own[command] in text
  assert 'Try --helpfull' in text       # absl's layout for every command.


@pytest.mark.parametrize('command', COMMANDS)
def test_unknown_flag_and_stray_argument_are_one_line(command):
  r = run_module(command, '--no_such_flag=1', timeout=120)
  assert r.returncode == errors.EXIT_USAGE
  assert 'no_such_flag' in one_error_line(r)
  required = (['--config=configs/demo.py', '--workdir=unused']
              if command == 'main' else [])
  r = run_module(command, *required, 'stray.png', timeout=120)
  assert r.returncode == errors.EXIT_USAGE
  assert "unexpected arguments ['stray.png']" in one_error_line(r)


@pytest.mark.parametrize('command,needles', [
    ('main', ['--config is required: experiment config file',
              '; --workdir is required: directory for checkpoints']),
    ('evaluate', ['give --method=bicubic or --workdir=DIR']),
    ('predict', ['give the model: --workdir=DIR']),
])
def test_missing_flags_are_one_friendly_line_in_every_command(command,
                                                              needles):
  """Not absl's raw 'flag --config=None: Flag --config must have ...'."""
  r = run_module(command, timeout=120)
  assert r.returncode == errors.EXIT_USAGE
  line = one_error_line(r)
  assert 'other than None' not in line and 'flag --' not in line, line
  for needle in needles:
    assert needle in line, line


@pytest.mark.parametrize('args,needle', [
    (['--config.totl_steps=3'], 'totl_steps'),
    (['--config.loss.options.unitz=1'], 'unitz'),
    (['--config.total_steps=many'], "invalid literal for int() with base 10: "
                                    "'many'"),
    (['--config=configs/no_such.py'], 'configs/no_such.py'),
    (['--config.total_steps=3', '--config=configs/demo.py'],
     'before a value for --config'),
    (['--workdir='], '--workdir'),
], ids=['unknown_key', 'unknown_loss_option', 'wrong_type', 'missing_file',
        'override_before_config', 'empty_workdir'])
def test_main_config_mistakes_are_one_line(tmp_path, args, needle):
  """Flag-order and missing-flag mistakes too (docs/failures.md)."""
  full = ['--config=configs/demo.py', f'--workdir={tmp_path / "w"}']
  if any(a.startswith('--config=') for a in args):
    full = [f'--workdir={tmp_path / "w"}']
  if '--workdir=' in args:
    full = ['--config=configs/demo.py']
  r = run_module('main', *full, *args, timeout=120)
  assert r.returncode == errors.EXIT_USAGE, r.stderr[-3000:]
  assert needle in one_error_line(r)
  assert not (tmp_path / 'w').exists()


def test_failed_run_leaves_no_empty_workdir_and_names_the_data(tmp_path):
  """A run that fails before writing anything (here: no dataset) names the
  path, points at DIV2K, and removes the workdir it created."""
  missing = tmp_path / 'no_such_dir'
  r = run_module('main', '--config=configs/gram.py',
                 f'--workdir={tmp_path / "w"}',
                 f'--config.data.train_dir={missing}')
  assert r.returncode == errors.EXIT_USAGE
  line = one_error_line(r)
  assert str(missing) in line and 'DIV2K' in line
  assert not (tmp_path / 'w').exists()


def test_main_bad_value_is_one_line_naming_the_key(tmp_path):
  """The whole way through ``main``: a value that parses but is invalid."""
  r = run_module('main', '--config=configs/demo.py',
                 f'--workdir={tmp_path}', '--config.data.crop_size=50')
  assert r.returncode == errors.EXIT_USAGE
  assert one_error_line(r) == ('error: config.data.crop_size=50: must be a '
                               'positive multiple of config.model.scale=4')
