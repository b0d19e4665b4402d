"""Steps/s of the real training loop for several steps-per-dispatch values.

    python benchmarks/bench_loop.py [--config=configs/demo.py] [--ks=1,4]
        [--steps=120] [--rounds=2] [--json=FILE] [-- --config.KEY=VALUE ...]

Each run is ``python -m gramjax.main`` in a fresh process and workdir (input
pipeline, metrics, checkpoints and validation included, as a user runs it),
with ``--config.steps_per_dispatch=k``; runs of the ``--ks`` alternate, so
load on the machine hits them alike. The figure is the steady-state rate:
the steps after the first log point over the time they took (the first
window holds the compilation), from the ``steps_per_sec`` of
``metrics.jsonl``. ``k=0`` means the platform's default. Prints each run,
the median per k and the ratios to k=1, in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def one_run(config: str, k: int, steps: int, log_every: int,
            extra: list[str]) -> dict:
  """One training run; returns {'k', 'steps_per_sec', 'wall_s'}."""
  with tempfile.TemporaryDirectory() as tmp:
    args = [sys.executable, '-m', 'gramjax.main', f'--config={config}',
            f'--workdir={tmp}/w', f'--config.total_steps={steps}',
            f'--config.log_every={log_every}',
            f'--config.steps_per_dispatch={k}',
            f'--config.checkpoint_every={steps}', '--config.tensorboard=False',
            '--config.data.sample_images=', *extra]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'))
    if proc.returncode:
      sys.exit(f'run with k={k} failed:\n{proc.stderr[-3000:]}')
    rows = [json.loads(l) for l in
            (pathlib.Path(tmp) / 'w' / 'metrics.jsonl').read_text().splitlines()]
  rows = [r for r in rows if 'loss' in r]
  # Weighted by the steps of each window, leaving out the first (compile).
  windows = [(b['step'] - a['step'], b['steps_per_sec'])
             for a, b in zip(rows, rows[1:])]
  total = sum(n for n, _ in windows)
  seconds = sum(n / rate for n, rate in windows)
  return {'k': k, 'steps_per_sec': total / seconds}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--ks', default='1,0',
                      help='steps per dispatch to compare (0: default)')
  parser.add_argument('--steps', type=int, default=120)
  parser.add_argument('--log_every', type=int, default=20)
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--json', default=None)
  args, extra = parser.parse_known_args()
  extra = [e for e in extra if e != '--']
  ks = [int(k) for k in args.ks.split(',')]
  import jax  # pylint: disable=g-import-not-at-top
  device = f'{jax.default_backend()}: {jax.devices()[0].device_kind}'
  print(f'{args.config}, {args.steps} steps, log every {args.log_every}, '
        f'on {device} ({os.cpu_count()} cores)', flush=True)
  runs = []
  for r in range(args.rounds):
    for k in ks:
      run = one_run(args.config, k, args.steps, args.log_every, extra)
      runs.append(run)
      print(f'  round {r + 1}, k={k}: {run["steps_per_sec"]:.2f} steps/s',
            flush=True)
  median = {k: statistics.median(x['steps_per_sec'] for x in runs
                                 if x['k'] == k) for k in ks}
  base = median.get(1)
  for k in ks:
    ratio = f', {median[k] / base:.2f}x k=1' if base else ''
    print(f'k={k}{" (default)" if k == 0 else ""}: median '
          f'{median[k]:.2f} steps/s{ratio}')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(
        {'config': args.config, 'device': device, 'steps': args.steps,
         'extra': extra, 'runs': runs, 'median': median}, indent=2) + '\n')


if __name__ == '__main__':
  main()
