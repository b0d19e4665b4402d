"""Nothing lost, nothing cryptic: kills, preemption, divergence, bad configs,
bad datasets and unwritable or full disks, each as the user meets it.

Every row of the failure table in docs/failures.md
names the test here that covers it. The command-line
behaviour is checked either on ``python -m gramjax.main`` itself (signals,
kills, flag parsing, exit statuses) or, where only the training code can
fail, in-process through ``gramjax.cli.run`` (exactly what ``main`` wraps
around ``train_and_evaluate``: ``error: ...`` on stderr, exit status 2),
which saves a 5-8 s interpreter start per case.
"""

import errno
import io
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax import cli
from gramjax import data as data_lib
from gramjax.inference import predictor as inference
from gramjax.state import train_state as state_lib
from gramjax.training import loop as train
from tests.conftest import REPO, command, run_module, training_metrics

# The demo config shrunk to a model that trains at ~40 steps/s on a CPU.
TINY = {'model.num_blocks': 1, 'model.channels': 8, 'data.crop_size': 32,
        'batch_size': 4, 'checkpoint_every': 5, 'log_every': 5,
        'data.sample_images': '', 'tensorboard': False}
TINY_FLAGS = [f'--config.{k}={v}' for k, v in TINY.items()]
ENV = dict(os.environ, JAX_PLATFORMS='cpu')
ENV.pop('XLA_FLAGS', None)


def tiny(total_steps, **overrides):
  """The same config as ``main`` builds from ``configs/demo.py`` plus
  ``TINY_FLAGS`` and ``--config.total_steps``."""
  c = demo_config.get_config()
  c.total_steps = total_steps
  for k, v in {**TINY, **overrides}.items():
    node = c
    *path, last = k.split('.')
    for p in path:
      node = node[p]
    assert last in node, k  # The config is unlocked here: no typos.
    node[last] = v
  return c


def main_args(workdir, total_steps, *extra):
  """The flags of ``main`` for the tiny demo config."""
  return ['--config=configs/demo.py', f'--workdir={workdir}', *TINY_FLAGS,
          f'--config.total_steps={total_steps}', *extra]


def run_main(*args, timeout=300):
  return run_module('main', *args, timeout=timeout, env=ENV)


def start_main(args, log_path):
  with open(log_path, 'w') as log:
    return subprocess.Popen(command('main', *args), cwd=REPO, env=ENV,
                            stdout=log,
                            stderr=subprocess.STDOUT)


def cli_train(config, workdir, *, allow_config_change=False):
  """``main``'s body in-process: returns the exit status (0, 2, 75)."""
  return cli.run(lambda: train.train_and_evaluate(
      config, workdir, allow_config_change=allow_config_change),
                 verbose=False)


def one_error_line(stderr):
  """The single ``error:`` line of a failed command; no traceback."""
  assert 'Traceback' not in stderr, stderr[-3000:]
  lines = [l for l in stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1, stderr[-3000:]
  return lines[0]


def read_metrics(workdir):
  return training_metrics(workdir)


def logged_steps(workdir):
  return [m['step'] for m in read_metrics(workdir)]


def checkpoint_steps(workdir):
  d = pathlib.Path(workdir) / 'checkpoints'
  if not d.is_dir():
    return []
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())


def tmp_dirs(workdir):
  d = pathlib.Path(workdir) / 'checkpoints'
  return sorted(p.name for p in d.iterdir()
                if 'orbax-checkpoint-tmp' in p.name) if d.is_dir() else []


def leaves(predictor):
  return [np.asarray(x) for x in
          jax.tree.leaves((predictor.params, predictor.model_state))]


def assert_same_model(a, b):
  la, lb = leaves(a), leaves(b)
  assert len(la) == len(lb) and la
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


def wait_for(predicate, timeout, what, proc=None):
  end = time.time() + timeout
  while time.time() < end:
    if predicate():
      return
    if proc is not None and proc.poll() is not None:
      raise AssertionError(f'the run ended (status {proc.returncode}) '
                           f'before {what}')
    time.sleep(0.02)
  raise AssertionError(f'timed out waiting for {what}')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """10 good steps (checkpoints 5 and 10) and the model at step 10."""
  workdir = tmp_path_factory.mktemp('trained')
  train.train_and_evaluate(tiny(10), workdir)
  assert checkpoint_steps(workdir) == [5, 10]
  return workdir, inference.load(workdir, 10)


def copy_of(workdir, tmp_path):
  dest = tmp_path / 'work'
  shutil.copytree(workdir, dest)
  return dest


# ------------------------------------------------------------ SIGKILL --

KILL_SEED = 1234
KILL_TOTAL = 80
# Two kills during start-up (imports, data, restore, compilation) and three
# while training (steps, metric lines, asynchronous orbax saves), in a
# seeded order: uniform moments spread over a run's life would nearly all
# land in start-up, which takes half the run.
KILL_PHASES = ('start-up',) * 2 + ('training',) * 3
COMPILED = 'compiled and ran the first step'


def _tmp_signature(workdir):
  d = pathlib.Path(workdir) / 'checkpoints'
  return {(n, (d / n).stat().st_ino, (d / n).stat().st_mtime_ns)
          for n in tmp_dirs(workdir)}


def _phase(log_text, workdir, tmp_before):
  """Which part of the run a SIGKILL interrupted (for the test's output)."""
  if COMPILED not in log_text:
    where = 'start-up/compilation'
  else:
    steps = re.findall(r'step (\d+)/\d+', log_text)
    where = f'training (last logged step {steps[-1] if steps else "-"})'
  new = sorted(n for n, *_ in _tmp_signature(workdir) - tmp_before)
  if new:
    where += f', mid-save ({", ".join(new)} left behind)'
  return where


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_bit_for_bit(tmp_path):
  """SIGKILL at 5 seeded random moments of the run's life, the same command
  restarted each time, ends with exactly the parameters and metrics.jsonl
  values of a run never interrupted."""
  ref = tmp_path / 'uninterrupted'
  ref_log = tmp_path / 'ref.log'
  t0 = time.time()
  proc = start_main(main_args(ref, KILL_TOTAL), ref_log)
  wait_for(lambda: COMPILED in ref_log.read_text(), 300,
           'the first step', proc)
  startup = time.time() - t0
  assert proc.wait(timeout=300) == 0, ref_log.read_text()[-3000:]
  per_step = (time.time() - t0 - startup) / KILL_TOTAL

  work = tmp_path / 'killed'
  args = main_args(work, KILL_TOTAL)
  rng = np.random.default_rng(KILL_SEED)
  report = [f'uninterrupted run: start-up {startup:.1f}s, then '
            f'{per_step * 1e3:.0f} ms/step (saves included)']
  for i, phase in enumerate(rng.permutation(KILL_PHASES)):
    resumed_from = max(checkpoint_steps(work), default=0)
    tmp_before = _tmp_signature(work)
    log = tmp_path / f'attempt{i}.log'
    t0 = time.time()
    proc = start_main(args, log)
    if phase == 'start-up':
      moment = rng.uniform(0.5, 0.9 * startup)
    else:  # A moment within the steps this attempt has left to run.
      wait_for(lambda: COMPILED in log.read_text(), 300, 'the first step',
               proc)
      left = (KILL_TOTAL - resumed_from) * per_step
      moment = time.time() - t0 + rng.uniform(0.0, 0.6) * left
    try:
      proc.wait(timeout=max(0.0, moment - (time.time() - t0)))
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == -signal.SIGKILL, (
        f'attempt {i} ended by itself before its kill at {moment:.2f}s:\n'
        f'{text[-3000:]}')
    start = f'from step {resumed_from}' if resumed_from else 'from scratch'
    report.append(f'kill {i + 1} ({phase}) at {moment:.2f}s of an attempt '
                  f'{start}: {_phase(text, work, tmp_before)}')
  log = tmp_path / 'final.log'
  proc = start_main(args, log)
  assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
  print('\n'.join(report))

  assert_same_model(inference.load(work), inference.load(ref))
  assert max(checkpoint_steps(work)) == KILL_TOTAL
  want, got = read_metrics(ref), read_metrics(work)
  steps = list(range(TINY['log_every'], KILL_TOTAL + 1, TINY['log_every']))
  assert [m['step'] for m in want] == steps
  assert [m['step'] for m in got] == steps  # Each exactly once.
  for a, b in zip(want, got):
    a.pop('steps_per_sec')
    b.pop('steps_per_sec')
    assert a == b  # loss, nll, mse, psnr, ... identical.


def test_stale_tmp_dir_and_cut_metrics_line_do_not_break_resume(
    trained, tmp_path, caplog):
  """What a kill mid-save and mid-log leaves behind: unfinished orbax
  ``<step>.orbax-checkpoint-tmp`` folders and half a metrics line. The next
  start removes the folders and says so."""
  caplog.set_level(logging.INFO)
  work = copy_of(trained[0], tmp_path)
  stale = work / 'checkpoints' / '15.orbax-checkpoint-tmp'
  shutil.copytree(work / 'checkpoints' / '10', stale)
  shutil.rmtree(next(p for p in stale.iterdir() if p.is_dir()))
  other = work / 'checkpoints' / '12.orbax-checkpoint-tmp-1765000000'
  (other / 'state').mkdir(parents=True)
  with open(work / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 15, "loss": 0.1')
  state = train.train_and_evaluate(tiny(20), work)
  assert int(state.step) == 20
  assert checkpoint_steps(work) == [10, 15, 20]
  assert tmp_dirs(work) == []
  assert logged_steps(work) == [5, 10, 15, 20]
  removed = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith('removed ')]
  assert removed == [
      f'removed {other.name}, {stale.name} from {work / "checkpoints"}: '
      'unfinished checkpoint(s) of an interrupted save'], removed
  assert 'lost' not in caplog.text  # Step 10 was the last step logged.


def test_resume_says_how_many_steps_were_lost(trained, tmp_path, caplog):
  """Logged to step 10 but checkpointed only to step 5 (the save of 10
  never finished): the resume says 5 steps are trained again."""
  caplog.set_level(logging.INFO)
  work = copy_of(trained[0], tmp_path)
  shutil.rmtree(work / 'checkpoints' / '10')
  state = train.train_and_evaluate(tiny(10), work)
  assert int(state.step) == 10
  messages = [r.getMessage() for r in caplog.records]
  i = next(i for i, m in enumerate(messages) if m.startswith('resumed from'))
  assert messages[i].endswith(' at step 5')
  lost = [m for m in messages if 'lost' in m]
  assert lost == ['the previous run had reached step 10: going on from the '
                  'last complete checkpoint, step 5, 5 step(s) are lost and '
                  'trained again'], lost
  assert logged_steps(work) == [5, 10]


# --------------------------------------------------- SIGTERM / SIGINT --

def _stopped_step(log_text, signal_name):
  assert 'Traceback' not in log_text, log_text[-3000:]
  lines = [l for l in log_text.splitlines() if l.startswith('stopped:')]
  assert len(lines) == 1, log_text[-3000:]
  assert lines[0].startswith(f'stopped: {signal_name}: saved a checkpoint '
                             'at step '), lines[0]
  assert 'run the same command again to resume' in lines[0]
  return int(re.search(r'at step (\d+)', lines[0]).group(1))


def test_sigterm_and_sigint_save_exit_75_and_resume_there(tmp_path):
  work = tmp_path / 'w'
  args = main_args(work, 100_000)
  metrics = work / 'metrics.jsonl'
  saved = 0
  for i, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
    log = tmp_path / f'{sig.name}.log'
    proc = start_main(args, log)
    # A line logged after this attempt's start: the loop (and the signal
    # handler) is running.
    wait_for(lambda: metrics.exists() and any(
        s > saved for s in logged_steps(work)), 300,
             f'a metrics line after step {saved}', proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == 75, log.read_text()[-3000:]
    text = log.read_text()
    step = _stopped_step(text, sig.name)
    assert f'{sig.name} received: finishing this step' in text
    assert step > saved and step in checkpoint_steps(work)
    if i:
      assert re.search(rf'resumed from \S+ at step {saved}\n', text), text
    steps = logged_steps(work)
    assert steps == sorted(set(steps))          # No step logged twice.
    assert steps[-1] == step                    # Logged where it stopped.
    after = [s for s in steps if s > saved]
    assert after and after[0] > saved
    saved = step
  # Changing only total_steps: resumes silently, exactly from the last save.
  r = run_main(*main_args(work, saved + 7))
  assert r.returncode == 0, r.stderr[-3000:]
  assert re.search(rf'resumed from \S+ at step {saved}\n', r.stderr)
  assert 'config changes' not in r.stderr and 'Traceback' not in r.stderr
  steps = logged_steps(work)
  assert steps == sorted(set(steps)) and steps[-1] == saved + 7
  assert max(checkpoint_steps(work)) == saved + 7


# ----------------------------------------------------------- NaN guard --

NAN_RE = (r'^error: non-finite loss or gradients at step (\d+) \(not '
          r'applied\); stopped at step (\d+)\. ')


def test_diverging_run_stops_with_one_line_and_last_checkpoint_intact(
    trained, tmp_path):
  workdir, model10 = trained
  work = copy_of(workdir, tmp_path)
  r = run_main(*main_args(work, 30, '--config.optimizer.lr_values=(1e9,1e9)',
                '--allow_config_change'))
  assert r.returncode == 2, r.stderr[-3000:]
  line = one_error_line(r.stderr)
  m = re.match(NAN_RE + r'The last good checkpoint is step (\d+) in (\S+)\. ',
               line)
  assert m, line
  first_bad, stopped, last_good = map(int, m.groups()[:3])
  assert 10 < first_bad <= stopped
  assert m.group(4) == str(work.absolute() / 'checkpoints')
  assert "config.nan_policy='skip'" in line and 'learning rate' in line
  assert '--config' not in line  # Library errors name keys, not flags.
  assert 'resuming with config changes: optimizer.lr_values' in r.stderr
  assert max(checkpoint_steps(work)) == last_good
  assert last_good < first_bad
  # The checkpoint the message names restores, finite; step 10 untouched.
  good = inference.load(work, last_good)
  assert all(np.isfinite(x).all() for x in leaves(good))
  assert_same_model(inference.load(work, 10), model10)


def test_diverging_run_without_checkpoint_says_so(tmp_path, capsys):
  config = tiny(10, **{'optimizer.lr_values': (1e9, 1e9)})
  assert cli_train(config, tmp_path) == 2
  line = one_error_line(capsys.readouterr().err)
  assert re.match(NAN_RE + r'No checkpoint was saved yet\.', line), line
  assert checkpoint_steps(tmp_path) == []


def test_nan_policy_skip_completes_with_finite_params(tmp_path, caplog):
  caplog.set_level(logging.WARNING)
  config = tiny(10, **{'optimizer.lr_values': (1e9, 1e9),
                       'nan_policy': 'skip'})
  state = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 10 and int(state.bad_steps) > 0
  warnings = [r.getMessage() for r in caplog.records
              if 'were skipped so far' in r.getMessage()]
  assert warnings, caplog.text
  assert re.match(r'\d+ step\(s\) with a non-finite loss or gradients were '
                  r'skipped so far \(first: step \d+\)', warnings[-1])
  assert checkpoint_steps(tmp_path) == [5, 10]
  assert all(np.isfinite(x).all() for x in leaves(inference.load(tmp_path)))
  # The count also lands in metrics.jsonl, for whoever reads the run later.
  rows = [json.loads(l) for l in
          (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  counted = [r for r in rows if 'skipped_steps' in r]
  assert counted[-1]['skipped_steps'] == int(state.bad_steps)
  assert counted[-1]['first_skipped_step'] == int(state.first_bad_step)


def test_on_device_guard_leaves_the_state_unchanged():
  config = tiny(1, **{'model.batch_norm': True})  # BatchNorm state too.
  recipe = state_lib.build(config)
  good_loss = train.pixel_loss_from_config(config)

  def pixel_loss(mean, log_var, target):
    """The real loss; NaN (loss and gradients) on an all-white batch, NaN
    gradients under a finite loss on an all-black one: one compilation."""
    white, black = jnp.all(target == 1.0), jnp.all(target == -1.0)
    # sqrt(|0| + 0): value 0, gradient NaN; sqrt(|0| + 1) - 1: 0, gradient 0.
    off = jnp.where(black, 0.0, 1.0)
    dead = jnp.sqrt(jnp.abs(mean - jax.lax.stop_gradient(mean)) + off) - off
    return (good_loss(mean, log_var, target) * jnp.where(white, jnp.nan, 1.0)
            + dead)

  step = jax.jit(train.make_train_step(
      recipe.graphdef, recipe.tx, pixel_loss, recipe.schedule, scale=4,
      round_lr=True,
      attention_units='[-1,1]'))
  rng = np.random.default_rng(0)
  photo_batch = {'hr': jnp.asarray(rng.integers(0, 256, (4, 32, 32, 3),
                                                np.uint8))}
  white = {'hr': jnp.full((4, 32, 32, 3), 255, jnp.uint8)}
  black = {'hr': jnp.zeros((4, 32, 32, 3), jnp.uint8)}
  state = recipe.init(recipe.params, recipe.model_state)
  frozen = lambda s: [np.asarray(x) for x in jax.tree.leaves(
      (s.params, s.model_state, s.opt_state))]

  assert jax.tree.leaves(state.model_state)
  s1, m1 = step(state, white)
  assert not np.isfinite(float(m1['loss']))
  for a, b in zip(frozen(state), frozen(s1)):
    np.testing.assert_array_equal(a, b)
  assert (int(s1.step), int(s1.bad_steps), int(s1.first_bad_step)) == (1, 1, 1)

  s2, m2 = step(s1, photo_batch)
  assert np.isfinite(float(m2['loss'])) and np.isfinite(float(m2['grad_norm']))
  assert any(not np.array_equal(a, b)
             for a, b in zip(frozen(s1), frozen(s2)))
  assert (int(s2.step), int(s2.bad_steps), int(s2.first_bad_step)) == (2, 1, 1)

  s3, m3 = step(s2, black)
  assert np.isfinite(float(m3['loss']))
  assert not np.isfinite(float(m3['grad_norm']))
  for a, b in zip(frozen(s2), frozen(s3)):
    np.testing.assert_array_equal(a, b)
  assert (int(s3.step), int(s3.bad_steps), int(s3.first_bad_step)) == (3, 2, 1)


# --------------------------------------------------------------- config --

@pytest.mark.parametrize('overrides,message', [
    ({'data.crop_size': 30},
     'error: config.data.crop_size=30: must be a positive multiple of '
     'config.model.scale=4'),
    ({'optimizer.lr_boundaries': (300, 200), 'optimizer.lr_values':
      (1e-3, 1e-4, 1e-5)},
     'error: config.optimizer.lr_boundaries=(300, 200): must be positive and '
     'strictly increasing'),
    ({'optimizer.lr_values': (1e-3, 1e-4, 1e-5)},
     'error: config.optimizer.lr_values=(0.001, 0.0001, 1e-05): needs one '
     'entry more than config.optimizer.lr_boundaries=(1200,)'),
    ({'loss.name': 'gramm'},
     "error: config.loss.name='gramm': not a registered loss; choose one of "
     'beta_nll, faithful, gram'),
    ({'loss.options': {'unitz': '[0,1]'}},
     "error: config.loss.options.unitz='[0,1]': not an option of loss "
     "'gram_vjp'; it accepts units, mask_fn"),
    ({'nan_policy': 'ignore'},
     "error: config.nan_policy='ignore': use one of stop, skip"),
    ({'data.lr_source': 'lr_files'},
     "error: config.data.lr_source='lr_files': use one of bicubic, files"),
    ({'batch_size': 0}, 'error: config.batch_size=0: must be >= 1'),
    ({'log_every': 0}, 'error: config.log_every=0: must be >= 1'),
    ({'best_metric': 'val/div2k/psnr'},
     "error: config.best_metric='val/div2k/psnr': give '' or val/<a key of "
     'config.evals>/<metric>'),
    ({'cpu_devices': 3},
     'error: config.cpu_devices=3: does not divide config.batch_size=4'),
], ids=['crop_scale', 'lr_order', 'lr_values_len', 'loss_name',
        'loss_option', 'nan_policy', 'lr_source', 'batch_size', 'log_every',
        'best_metric', 'cpu_devices'])
def test_bad_config_value_is_one_line_naming_the_key(tmp_path, capsys,
                                                     overrides, message):
  assert cli_train(tiny(3, **overrides), tmp_path / 'w') == 2
  line = one_error_line(capsys.readouterr().err)
  assert line.startswith(message), line
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_resume_with_other_config_is_refused_listing_the_keys(trained,
                                                              capsys):
  workdir, _ = trained
  before = sorted(p.name for p in workdir.rglob('*'))
  config = tiny(20, **{'model.channels': 16, 'optimizer.b2': 0.999})
  assert cli_train(config, workdir) == 2
  line = one_error_line(capsys.readouterr().err)
  assert line.startswith(
      f'error: the workdir {workdir} holds a checkpoint (step 10) made with a '
      'different config: '), line
  assert 'model.channels: 8 -> 16; optimizer.b2: 0.99 -> 0.999.' in line
  assert 'total_steps' not in line  # A resumable change.
  assert 'allow_config_change' in line and '--' not in line
  assert sorted(p.name for p in workdir.rglob('*')) == before


def test_allow_config_change_resumes_with_the_new_values(trained, tmp_path,
                                                         caplog):
  caplog.set_level(logging.INFO)
  work = copy_of(trained[0], tmp_path)
  config = tiny(15, **{'optimizer.b2': 0.999})
  state = train.train_and_evaluate(config, work, allow_config_change=True)
  assert int(state.step) == 15
  assert ('resuming with config changes: optimizer.b2: 0.99 -> 0.999'
          in caplog.text)
  # config.json says what the run went on with, not what it started with.
  assert json.loads((work / 'config.json').read_text())['optimizer'][
      'b2'] == 0.999
  assert logged_steps(work) == [5, 10, 15]


def test_changing_only_total_steps_resumes_silently(trained, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  work = copy_of(trained[0], tmp_path)
  state = train.train_and_evaluate(tiny(15), work)
  assert int(state.step) == 15
  assert 'resumed from' in caplog.text and 'at step 10' in caplog.text
  assert 'config changes' not in caplog.text
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_allow_config_change_with_other_architecture_is_one_line(
    trained, tmp_path):
  # A subprocess: the failed restore leaves orbax coroutines behind that
  # would complain at this interpreter's exit.
  work = copy_of(trained[0], tmp_path)
  r = run_main(*main_args(work, 15, '--config.model.channels=16',
                               '--allow_config_change'))
  assert r.returncode == 2, r.stderr[-3000:]
  assert 'model.channels' in one_error_line(r.stderr)


# -------------------------------------------------------------- dataset --

def photo(h, w, seed=0, channels=3):
  rng = np.random.default_rng(seed)
  shape = (h, w, channels) if channels > 1 else (h, w)
  return rng.integers(0, 256, shape, np.uint8)


def encode(img, **kw):
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, **kw)
  return buf.getvalue()


def good_folder(folder, n=3):
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(n):
    Image.fromarray(photo(48, 56, seed=i)).save(folder / f'good{i}.png')
  return folder


def corrupt_png():
  png = bytearray(encode(photo(48, 48, seed=9), format='PNG'))
  idat = png.index(b'IDAT')
  for i in range(idat + 20, idat + 60):
    png[i] ^= 0x5a
  return bytes(png)


def _bad_dataset(kind, root):
  """(train_dir, substrings the error line must contain)."""
  folder = root / 'data'
  if kind == 'missing':
    return folder, [f'config.data.train_dir: {folder} does not exist.',
                    'DIV2K', 'https://data.vision.ee.ethz.ch/cvl/DIV2K/']
  folder.mkdir()
  if kind == 'empty':
    return folder, ['config.data.train_dir: no images (.png, .jpg',
                    f') in {folder}']
  if kind == 'no_images':
    (folder / 'README.txt').write_text('photos go here')
    (folder / 'list.csv').write_text('a,b\n')
    (folder / 'sub.png').mkdir()   # A folder named like an image.
    return folder, ['config.data.train_dir: no images (.png', str(folder)]
  good_folder(folder)
  bad = folder / {'corrupt_png': 'b_corrupt.png',
                  'truncated_jpeg': 'b_truncated.jpg',
                  'text_as_png': 'b_notes.png',
                  'too_small': 'b_small.png'}[kind]
  if kind == 'corrupt_png':
    bad.write_bytes(corrupt_png())
    return folder, [f'error: {bad}: cannot decode image (']
  if kind == 'truncated_jpeg':
    jpg = encode(photo(48, 48, seed=7), format='JPEG', quality=90)
    bad.write_bytes(jpg[:len(jpg) // 2])
    return folder, [f'error: {bad}: cannot decode image (',
                    'image file is truncated']
  if kind == 'text_as_png':
    bad.write_text('these are my notes, not a picture\n' * 10)
    return folder, [f'error: {bad}: cannot decode image (',
                    'cannot identify image file']
  Image.fromarray(photo(20, 60, seed=3)).save(bad)
  return folder, [f'error: {bad}: image is 60x20, smaller than the 32px '
                  'training crop (config.data.crop_size)']


@pytest.mark.parametrize('kind', ['missing', 'empty', 'no_images',
                                  'corrupt_png', 'truncated_jpeg',
                                  'text_as_png', 'too_small'])
def test_bad_dataset_is_one_line_naming_the_file(tmp_path, capsys, kind):
  folder, parts = _bad_dataset(kind, tmp_path)
  config = tiny(3, **{'data.train_dir': str(folder)})
  assert cli_train(config, tmp_path / 'w') == 2
  line = one_error_line(capsys.readouterr().err)
  for part in parts:
    assert part in line, (part, line)
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_cli_corrupt_image_one_line_and_verbose_traceback(tmp_path):
  folder, parts = _bad_dataset('corrupt_png', tmp_path)
  args = ['--config=configs/demo.py', f'--workdir={tmp_path / "w"}',
          f'--config.data.train_dir={folder}']
  r = run_main(*args)
  assert r.returncode == 2
  assert one_error_line(r.stderr).startswith(parts[0])
  v = run_main(*args, '--verbose')
  assert v.returncode == 1  # Python's status for an uncaught exception.
  assert 'Traceback (most recent call last)' in v.stderr
  assert f'gramjax.core.errors.UserError: {folder / "b_corrupt.png"}: cannot ' \
         'decode image' in v.stderr


def test_greyscale_rgba_16bit_and_palette_images_train(tmp_path):
  folder = tmp_path / 'mixed'
  folder.mkdir()
  rgb = photo(40, 44, seed=1)
  Image.fromarray(rgb).convert('L').save(folder / 'grey.png')
  Image.fromarray(np.dstack([rgb, photo(40, 44, 2, 1)]), 'RGBA').save(
      folder / 'rgba.png')
  grey16 = np.linspace(0, 65535, 40 * 44).reshape(40, 44).astype(np.uint16)
  Image.fromarray(grey16).save(folder / 'grey16.png')
  assert Image.open(folder / 'grey16.png').mode.startswith('I')
  Image.fromarray(rgb).convert('P').save(folder / 'palette.png')
  Image.fromarray(rgb).convert('LA').save(folder / 'grey_alpha.png')
  Image.fromarray(rgb).convert('CMYK').save(folder / 'cmyk.jpg')
  paths = data_lib.resolve_images(str(folder))
  images = data_lib.load_images(paths, 32)
  assert len(images) == 6
  for path, img in zip(paths, images):
    assert img.dtype == np.uint8 and img.shape == (40, 44, 3), path
  g16 = images[[p.name for p in paths].index('grey16.png')]
  assert g16.max() == 255 and g16.min() == 0  # Scaled by the range.
  state = train.train_and_evaluate(
      tiny(2, **{'data.train_dir': str(folder), 'log_every': 1}),
      tmp_path / 'w')
  assert int(state.step) == 2 and int(state.bad_steps) == 0
  assert all(np.isfinite(m['loss']) for m in read_metrics(tmp_path / 'w'))


# -------------------------------------------------------------- workdir --

@pytest.mark.parametrize('layout,why', [
    ('under_a_file', 'cannot write there ([Errno 20] Not a directory'),
    ('is_a_file', 'exists and is not a folder')])
def test_unwritable_workdir_is_one_line(tmp_path, capsys, layout, why):
  """Tests run as root, whom permission bits do not stop: a path under (or
  at) a regular file cannot be created by anyone."""
  afile = tmp_path / 'afile'
  afile.write_text('a file, not a folder')
  workdir = afile / 'sub' if layout == 'under_a_file' else afile
  assert cli_train(tiny(3), workdir) == 2
  line = one_error_line(capsys.readouterr().err)
  assert line.startswith(f'error: workdir {workdir}: {why}'), line
  assert afile.read_text() == 'a file, not a folder'


def test_read_only_workdir_is_one_line(tmp_path, capsys):
  if os.geteuid() == 0:
    pytest.skip('root writes whatever the permissions (see the test above)')
  workdir = tmp_path / 'ro'
  workdir.mkdir()
  workdir.chmod(0o555)
  try:
    assert cli_train(tiny(3), workdir) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f'error: workdir {workdir}: cannot write there')
  finally:
    workdir.chmod(0o755)


def test_disk_full_during_save_names_the_intact_checkpoint(
    trained, tmp_path, capsys, monkeypatch):
  workdir, model10 = trained
  work = copy_of(workdir, tmp_path)
  real_save = ocp.CheckpointManager.save

  def full_disk_save(self, step, *args, **kwargs):
    if step >= 15:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full_disk_save)
  assert cli_train(tiny(20), work) == 2
  line = one_error_line(capsys.readouterr().err)
  ckdir = work.absolute() / 'checkpoints'
  assert line == (
      f'error: saving the checkpoint of step 15 in {ckdir} failed (OSError: '
      '[Errno 28] No space left on device); the last complete checkpoint is '
      'step 10, intact: free space and run the same command to resume from '
      'it')
  assert checkpoint_steps(work) == [5, 10]
  # The named checkpoint restores, unchanged.
  assert_same_model(inference.load(work), model10)
  # Space freed: the same command resumes from step 10.
  monkeypatch.setattr(ocp.CheckpointManager, 'save', real_save)
  assert cli_train(tiny(20), work) == 0
  assert checkpoint_steps(work) == [10, 15, 20]
  assert logged_steps(work) == [5, 10, 15, 20]
