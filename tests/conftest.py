"""Shared test helpers: the repository's paths, the benchmark images beside
it, and the one way tests run a command line."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

# One persistent JAX compilation cache for the test run and the command
# lines it starts (they inherit the environment): the suite compiles the
# same small models again and again, in-process and in subprocesses. Only
# a cache (keyed on the program, the devices and the JAX version); set
# JAX_COMPILATION_CACHE_DIR yourself to move it, or to '' to turn it off.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(
    tempfile.gettempdir(), f'gramjax-tests-jax-cache-{os.getuid()}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'


def shared_data(name: str) -> pathlib.Path:
  """A folder of ../shared/data, or a clean skip where it is absent."""
  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f'{path} not found: the benchmark images live beside the '
                'repository in ../shared/data (not shipped with gramjax)')
  return path


def run_module(module: str, *args, timeout: float = 600, env=None,
               cwd=REPO) -> subprocess.CompletedProcess:
  """``python -m gramjax.<module> ARGS`` from the repository root (as README
  runs it), captured as text; ``env`` replaces the environment."""
  return subprocess.run(command(module, *args), cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env=env)


def command(module: str, *args) -> list[str]:
  """The argv of ``python -m gramjax.<module> ARGS``."""
  return [sys.executable, '-m', f'gramjax.{module}', *map(str, args)]


def training_metrics(workdir) -> list[dict]:
  """The training lines of ``WORKDIR/metrics.jsonl`` (validation lines,
  ``val/<name>/...``, left out)."""
  text = (pathlib.Path(workdir) / 'metrics.jsonl').read_text()
  rows = [json.loads(l) for l in text.splitlines()]
  return [r for r in rows if 'loss' in r]


def error_lines(stderr: str) -> list[str]:
  """The ``error:`` lines of a command's stderr."""
  return [l for l in stderr.splitlines() if l.startswith('error:')]


def smooth_image(rng, h, w, channels=3):
  """A photo-like uint8 image: smooth random field plus a little texture."""
  from gramjax.core import imresize  # pylint: disable=g-import-not-at-top
  small = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, channels))
  big = imresize.imresize(small, 8.0)[:h, :w]
  big = big + rng.normal(0, 6, big.shape)
  return np.clip(np.round(big), 0, 255).astype(np.uint8)


def tiny_model_config(train_dir, total_steps: int = 10, **overrides):
  """The demo config shrunk to a model that trains in seconds on
  ``train_dir`` (checkpoints every 5 steps, no validation or samples)."""
  from configs import demo  # pylint: disable=g-import-not-at-top
  c = demo.get_config()
  c.total_steps = total_steps
  c.log_every = c.checkpoint_every = 5
  c.tensorboard = False
  c.model.num_blocks, c.model.channels = 1, 8
  c.data.crop_size = 32
  c.data.train_dir = str(train_dir)
  c.data.sample_images = ''
  c.batch_size = 4
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = c
    for name in parents:
      node = node[name]
    node[leaf] = value
  return c
