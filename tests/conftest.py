"""Shared test helpers: the repository's paths, the benchmark images beside
it, and the one way tests run a command line."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

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
