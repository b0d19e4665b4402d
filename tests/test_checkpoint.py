"""Checkpoint policy without training: which config changes a resume
accepts, and how a stop request is raised (gramjax.state.checkpoint)."""

import os
import signal

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
  with pytest.raises(UserError, match=r'^--workdir=w holds a checkpoint '
                     r'\(step 5\) made with a different config: '
                     r'optimizer.b2: 0.99 -> 0.999\. .*--allow_config_change'):
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
      # A second SIGTERM would now take the default action (kill).
      assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGTERM) == before
  finally:
    ckpts.close()
