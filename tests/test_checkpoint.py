"""Checkpoint policy without training: which config changes a resume
accepts, and how a stop request is raised (gramjax.state.checkpoint)."""

import json
import os
import signal

import numpy as np
import pytest

from configs import demo as demo_config
from gramjax.state import checkpoint as ckpt_lib
from gramjax.core.errors import UserError


def config_dict(**changes):
  c = demo_config.get_config()
  for key, value in changes.items():
    section, name = key.split('.') if '.' in key else (None, key)
    (c[section] if section else c)[name] = value
  return ckpt_lib.config_to_dict(c)


def test_watching_keys_resume_silently():
  saved = config_dict()
  now = config_dict(total_steps=99, log_every=7, **{'data.num_threads': 1})
  assert ckpt_lib.config_differences(saved, now) == []
  assert ckpt_lib.check_resume(saved, now, where='w', step=5,
                               allow_config_change=False) == []


def test_checkpoints_from_before_icnr_and_the_blur_resume():
  """Configs saved before model.icnr and model.shuffle_blur existed: ICNR
  only changes the initialisation; an absent blur means off."""
  saved = config_dict(**{'model.shuffle_blur': False})
  del saved['model']['icnr'], saved['model']['shuffle_blur']
  now = config_dict(**{'model.shuffle_blur': False})
  assert now['model']['icnr'] is True
  assert ckpt_lib.config_differences(saved, now) == []
  blurred = config_dict(**{'model.shuffle_blur': True})
  assert ckpt_lib.config_differences(saved, blurred) == [
      "model.shuffle_blur: '<absent>' -> True"]


def test_other_changes_need_permission_and_are_listed():
  saved, now = config_dict(), config_dict(**{'optimizer.b2': 0.999})
  with pytest.raises(UserError, match=r'^the workdir w holds a checkpoint '
                     r'\(step 5\) made with a different config: '
                     r'optimizer.b2: 0.99 -> 0.999\. .*allow_config_change'):
    ckpt_lib.check_resume(saved, now, where='w', step=5,
                          allow_config_change=False)
  assert ckpt_lib.check_resume(saved, now, where='w', step=5,
                               allow_config_change=True) == [
                                   'optimizer.b2: 0.99 -> 0.999']


def test_layout_changes_are_never_resumable():
  saved, now = config_dict(), config_dict(**{'model.channels': 16})
  with pytest.raises(UserError, match='architecture change needs a new '
                     'workdir'):
    ckpt_lib.check_resume(saved, now, where='w', step=5,
                          allow_config_change=True)


def test_a_signal_asks_to_stop_once_and_restores_the_handlers(tmp_path):
  ckpts = ckpt_lib.Checkpoints(tmp_path, every=1, keep=1, async_save=False)
  before = signal.getsignal(signal.SIGTERM)
  try:
    with ckpt_lib.StopRequest(ckpts) as stop:
      assert stop.reason(1) is None
      os.kill(os.getpid(), signal.SIGTERM)
      assert stop.reason(2) == 'SIGTERM'
      assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before
  finally:
    ckpts.close()


def test_a_second_signal_stops_at_once_with_one_line(tmp_path, capsys,
                                                     monkeypatch):
  """Ctrl-C twice: one line and status 130, no unwinding through orbax's
  threads (``os._exit``, here caught)."""
  exits = []

  def fake_exit(status):
    exits.append(status)
    raise SystemExit(status)

  monkeypatch.setattr(ckpt_lib.os, '_exit', fake_exit)
  ckpts = ckpt_lib.Checkpoints(tmp_path, every=1, keep=1, async_save=False)
  try:
    with ckpt_lib.StopRequest(ckpts) as stop:
      os.kill(os.getpid(), signal.SIGINT)
      assert stop.reason(1) == 'SIGINT' and not exits
      capsys.readouterr()
      with pytest.raises(SystemExit):
        os.kill(os.getpid(), signal.SIGINT)
  finally:
    ckpts.close()
  assert exits == [130]
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1, lines
  assert lines[0].startswith('SIGINT received again: stopped at once')
  assert 'run the same command again' in lines[0]


def test_unfinished_saves_are_removed_by_the_trainer_only(tmp_path):
  """A ``<step>.orbax-checkpoint-tmp`` folder (an interrupted save): a
  reader leaves it, the training run's ``Checkpoints`` removes and lists
  it."""
  stale = tmp_path / 'checkpoints' / '7.orbax-checkpoint-tmp-1234'
  (stale / 'state').mkdir(parents=True)
  ckpt_lib.Checkpoints(tmp_path, async_save=False).close()
  ckpt_lib.open_read_only(tmp_path).close()
  assert stale.is_dir()
  ckpts = ckpt_lib.Checkpoints(tmp_path, async_save=False, clean_up=True)
  ckpts.close()
  assert ckpts.removed == [stale.name] and not stale.exists()


def test_read_only_creates_nothing(tmp_path):
  ckpts = ckpt_lib.open_read_only(tmp_path / 'w')
  try:
    assert ckpts.all_steps() == [] and ckpts.best() is None
  finally:
    ckpts.close()
  assert not (tmp_path / 'w').exists()
  assert ckpt_lib.best_step(tmp_path / 'w') is None


def test_the_best_checkpoint_is_orbaxs_by_the_saved_metrics(tmp_path):
  """Metrics go to orbax with the save; the best survives the latest-N
  policy and is found again by a reader (``best_step``)."""
  config = config_dict(best_metric='val/x/psnr', best_mode='max')
  ckpts = ckpt_lib.Checkpoints(tmp_path, keep=1, async_save=False,
                               best_metric='val/x/psnr')
  state = {'w': np.zeros(2, np.float32)}
  try:
    for step, psnr in ((1, 20.0), (2, 30.0), (3, 25.0), (4, None)):
      if psnr is not None:
        assert ckpts.is_better(psnr) == (psnr in (20.0, 30.0))
      ckpts.save(step, state, None, config, force=True,
                 metrics=None if psnr is None else {'val/x/psnr': psnr})
    assert ckpts.best()['step'] == 2
    assert ckpts.all_steps() == [2, 4]
  finally:
    ckpts.close()
  assert ckpt_lib.best_step(tmp_path) == 2


@pytest.mark.parametrize('legacy,found', [
    ({'step': 2, 'metric': 'val/x/psnr', 'value': 31.5, 'mode': 'max'}, 2),
    ({'step': 2, 'metric': 'val/y/psnr', 'value': 31.5, 'mode': 'max'}, None),
    ({'step': 2, 'metric': 'val/x/psnr', 'value': 31.5, 'mode': 'min'}, None),
    ({'step': 9, 'metric': 'val/x/psnr', 'value': 31.5, 'mode': 'max'}, None),
    ('{"step": 2, "metr', None)])
def test_a_workdir_from_before_orbaxs_metrics_keeps_its_best_json(
    tmp_path, legacy, found):
  """Runs made before the best moved into orbax's metrics named it in
  WORKDIR/best.json: readers (and a resumed run) still find it, when it
  names this best_metric and mode and a checkpoint that exists."""
  config = config_dict(best_metric='val/x/psnr', best_mode='max')
  ckpts = ckpt_lib.Checkpoints(tmp_path, keep=3, async_save=False)
  try:
    for step in (1, 2, 3):
      ckpts.save(step, {'w': np.zeros(2, np.float32)}, None, config,
                 force=True)
  finally:
    ckpts.close()
  (tmp_path / 'best.json').write_text(
      legacy if isinstance(legacy, str) else json.dumps(legacy))
  assert ckpt_lib.best_step(tmp_path) == found
  ckpts = ckpt_lib.Checkpoints(tmp_path, best_metric='val/x/psnr')
  try:
    assert ckpts.is_better(31.0) is (found is None)
  finally:
    ckpts.close()


def test_the_checkpoint_action_saves_on_schedule_and_on_a_new_best():
  """``actions.Checkpoint``: due every ``every`` steps, at the last step,
  and where the validation of that step beat the best (saved at once, with
  its values); ``Validate`` keeps only its own step's values."""
  from gramjax.training import actions  # pylint: disable=g-import-not-at-top

  class FakeCheckpoints:
    best_metric, best = 'val/x/psnr', 30.0
    is_better = lambda self, v: v > self.best

  saves = []
  validate = actions.Validate([], None, None)
  action = actions.Checkpoint(lambda *a, **k: saves.append((a[0], k)),
                              FakeCheckpoints(), 10, validate)
  due = lambda step: action.due(actions.Moment(step, 25))
  assert [s for s in range(1, 26) if due(s)] == [10, 20, 25]
  validate.step, validate.values = 7, {'val/x/psnr': 31.0}
  assert due(7) and not due(8)
  action(actions.Moment(7, 25), None)
  validate.values = {'val/x/psnr': 29.0}
  assert not due(7)
  action(actions.Moment(25, 25), None)
  assert saves == [(7, {'force': True, 'metrics': {'val/x/psnr': 31.0}}),
                   (25, {'force': True, 'metrics': None})]
