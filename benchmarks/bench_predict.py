"""Predict cost: time and peak memory to super-resolve a 256x256 LR image to
1024x1024 with the paper SRResNet, tiled and untiled.

    python benchmarks/bench_predict.py [--size=256] [--tiles=0,64,128]
        [--repeats=3] [--json=FILE]

Each setting runs in a fresh child process (peak memory is a high-water mark
that only a new process resets) on the same randomly initialised paper
model: first call (compilation included), then the median of --repeats
calls. Memory: the process's peak resident set over what it held before the
first call (CPU), or the device's peak bytes in use (GPU/TPU). The parent
prints JSON and a table, with every setting's time and memory as a ratio to
the untiled one.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rss_mib() -> float:
  """Current resident set of this process (MiB)."""
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def child(size: int, tile: int, repeats: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(ROOT))
  from configs import base  # pylint: disable=g-import-not-at-top
  from gramjax.inference import predictor as inference  # pylint: disable=g-import-not-at-top
  from gramjax.state import train_state as state_lib  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  recipe = state_lib.build(config)
  predictor = inference.Predictor(config, recipe.graphdef, recipe.params,
                                  recipe.model_state)
  lr = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
  dev = jax.devices()[0]
  before = rss_mib()
  t = time.perf_counter()
  mean, _ = predictor(lr, tile=tile)
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    predictor(lr, tile=tile)
    times.append(time.perf_counter() - t)
  out = {'tile': tile, 'output': list(mean.shape), 'first_call_s': first,
         'seconds': float(np.median(times)),
         'device': f'{dev.platform} ({dev.device_kind})'}
  # XLA's own account of one forward call at the largest shape it runs:
  # parameters + input + output + scratch (excludes compile-time scratch
  # such as cuDNN autotuning, which the device's peak counter includes).
  side = size if not tile or size <= tile else min(
      size, tile + 2 * predictor.radius)
  lowered = predictor._forward.lower(  # pylint: disable=protected-access
      predictor.params, predictor.model_state,
      jax.numpy.zeros((1, side, side, 3)))
  ma = lowered.compile().memory_analysis()
  if ma is not None:
    out['xla_call_mib'] = (ma.temp_size_in_bytes + ma.argument_size_in_bytes
                           + ma.output_size_in_bytes) / 2**20
  if dev.platform == 'cpu':
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out['peak_mib'] = peak - before
    out['memory'] = 'peak resident set over the pre-call baseline'
  else:
    stats = dev.memory_stats() or {}
    out['peak_mib'] = stats.get('peak_bytes_in_use', 0) / 2**20
    out['memory'] = ('device peak bytes in use (includes compile-time '
                     'autotuning scratch)')
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--size', type=int, default=256, help='LR side (px)')
  p.add_argument('--tiles', default='0,64,128',
                 help='LR tile sizes; 0 = untiled')
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--json', default=None)
  p.add_argument('--child', type=int, default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child is not None:
    print(json.dumps(child(args.size, args.child, args.repeats)))
    return
  rows = []
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE='false')
  for tile in [int(t) for t in args.tiles.split(',')]:
    run = subprocess.run(
        [sys.executable, __file__, f'--child={tile}', f'--size={args.size}',
         f'--repeats={args.repeats}'], capture_output=True, text=True,
        env=env, check=False)
    if run.returncode:
      sys.exit(f'error: tile {tile} failed:\n{run.stderr[-2000:]}')
    rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
  base_row = next((r for r in rows if r['tile'] == 0), rows[0])
  for r in rows:
    r['time_vs_untiled'] = r['seconds'] / base_row['seconds']
    r['memory_vs_untiled'] = r['peak_mib'] / max(base_row['peak_mib'], 1e-9)
  report = {'benchmark': 'predict', 'model': 'paper SRResNet x4 (16x64)',
            'lr_size': args.size, 'device': rows[0]['device'], 'rows': rows}
  print(json.dumps(report, indent=2))
  print(f'\n{args.size}x{args.size} -> {4 * args.size}x{4 * args.size}, '
        f'paper SRResNet, {rows[0]["device"]} ({rows[0]["memory"]}):')
  print(f'{"tile":>8}{"s/image":>10}{"1st call s":>12}{"peak MiB":>10}'
        f'{"XLA MiB":>9}{"time x":>8}{"mem x":>8}')
  for r in rows:
    print(f'{r["tile"] or "none":>8}{r["seconds"]:>10.2f}'
          f'{r["first_call_s"]:>12.2f}{r["peak_mib"]:>10.0f}'
          f'{r.get("xla_call_mib", float("nan")):>9.0f}'
          f'{r["time_vs_untiled"]:>8.2f}{r["memory_vs_untiled"]:>8.2f}')
  print('XLA MiB: parameters + input + output + scratch of one forward call '
        '(XLA\'s memory analysis) at the largest shape it runs.')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
