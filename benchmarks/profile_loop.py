"""Where the real training loop spends its time: a ``jax.profiler`` trace.

    python benchmarks/profile_loop.py [--config=configs/demo.py]
        [--steps=60,80] [-- --config.KEY=VALUE ...]

Trains ``python -m gramjax.main`` in a fresh workdir with
``--config.profile_steps=(FIRST,LAST)`` (input pipeline, metrics and
checkpoints included, as a user runs it), then reads the Perfetto trace it
wrote (``WORKDIR/profile/**/*.trace.json.gz``) and prints, per thread, the
time covered by its outermost events per training step and the event names
that take most of it. The main thread's Python work between dispatches is
the host time a step costs; compare it with the step time. Then measures
the input pipeline alone (same config, nothing else running): the
sustained batches/s its threads produce, the cost of ``next()`` from a
full prefetch buffer and of the host-to-device copy.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def outermost(events: list[dict]) -> list[dict]:
  """The events of one thread not nested in another, by start time."""
  out, end = [], float('-inf')
  for e in sorted(events, key=lambda e: (e['ts'], -e.get('dur', 0))):
    if e['ts'] >= end:
      out.append(e)
      end = e['ts'] + e.get('dur', 0)
  return out


def summarize(trace: dict, steps: int, top: int = 6) -> None:
  events = [e for e in trace['traceEvents'] if e.get('ph') == 'X']
  names = {(e['pid'], e.get('tid')): e['args']['name']
           for e in trace['traceEvents']
           if e.get('ph') == 'M' and e.get('name') == 'thread_name'}
  if not events:
    sys.exit('the trace holds no events')
  start = min(e['ts'] for e in events)
  span = max(e['ts'] + e.get('dur', 0) for e in events) - start
  print(f'trace: {span / 1e3:.1f} ms for {steps} steps = '
        f'{span / 1e3 / steps:.2f} ms/step')
  by_thread = collections.defaultdict(list)
  for e in events:
    by_thread[(e['pid'], e.get('tid'))].append(e)
  rows = []
  for key, evs in by_thread.items():
    top_level = outermost(evs)
    busy = sum(e.get('dur', 0) for e in top_level)
    rows.append((busy, key, top_level))
  for busy, key, top_level in sorted(rows, key=lambda r: r[0],
                                     reverse=True)[:8]:
    print(f'\n{names.get(key, key)}: {busy / 1e3 / steps:.2f} ms/step busy')
    totals = collections.Counter()
    for e in top_level:
      totals[e['name'][:70]] += e.get('dur', 0)
    for name, dur in totals.most_common(top):
      print(f'  {dur / 1e3 / steps:8.3f} ms/step  {name}')


def pipeline_rate(config_path: str, overrides: list[str]) -> None:
  """Prints the input pipeline's own rates for the config."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(REPO))
  from gramjax import data, distributed  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config')
  flags.FLAGS([sys.argv[0], f'--config={config_path}', *overrides])
  cfg = flags.FLAGS.config
  images, lr = data.load_training_set(cfg.data, cfg.model.scale)
  it = iter(data.train_dataset(
      images, crop=cfg.data.crop_size, batch_size=cfg.batch_size, seed=0,
      num_threads=cfg.data.num_threads, lr_images=lr, scale=cfg.model.scale))
  for _ in range(10):
    next(it)
  time.sleep(1.0)                                # Let the buffer fill.
  t = time.perf_counter()
  batch = next(it)
  ready = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(100):
    batch = next(it)
  sustained = (time.perf_counter() - t) / 100
  sharding = NamedSharding(distributed.create_mesh(), P('data'))
  t = time.perf_counter()
  for _ in range(100):
    x = jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, a), batch)
  jax.block_until_ready(x)
  put = (time.perf_counter() - t) / 100
  print(f'\ninput pipeline alone ({cfg.data.num_threads} threads, batch '
        f'{batch["hr"].shape}): {1 / sustained:.0f} batches/s sustained, '
        f'next() from a full buffer {ready * 1e3:.2f} ms, host-to-device '
        f'{put * 1e3:.2f} ms')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--steps', default='60,80',
                      help='FIRST,LAST: the steps to trace')
  args, extra = parser.parse_known_args()
  extra = [a for a in extra if a != '--']
  first, last = (int(s) for s in args.steps.split(','))
  with tempfile.TemporaryDirectory() as tmp:
    cmd = [sys.executable, '-m', 'gramjax.main', f'--config={args.config}',
           f'--workdir={tmp}/w', f'--config.total_steps={last + 1}',
           f'--config.profile_steps=({first},{last})',
           f'--config.checkpoint_every={last + 1}',
           '--config.tensorboard=False', '--config.data.sample_images=',
           *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
      sys.exit(f'training failed:\n{proc.stderr[-3000:]}')
    line = [l for l in proc.stderr.splitlines() if 'profiled steps' in l]
    print(line[-1].split('] ')[-1] if line else 'no profile line logged')
    traced = line[-1].split('profiled steps ')[1].split()[0] if line else ''
    a, b = (int(s) for s in traced.split('-')) if traced else (first, last)
    (path,) = pathlib.Path(tmp, 'w', 'profile').rglob('*.trace.json.gz')
    with gzip.open(path, 'rt') as f:
      summarize(json.load(f), b - a)
  pipeline_rate(args.config, extra)


if __name__ == '__main__':
  main()
