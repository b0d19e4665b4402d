"""Train-step cost of each loss on the paper SRResNet, measured in one run.

    python benchmarks/bench_train.py [--steps=5] [--rounds=3] [--json=FILE]

Compiles one jitted train step per loss (same model, batch 16 of 96x96 HR
crops, x4), then times them interleaved (round-robin, so machine noise hits
every loss alike) and prints JSON plus a table: ms/step, images/s, compile
seconds, and each loss's step time as a ratio to MSE's (the paper's claim:
GRAM's overhead over MSE training is negligible). Model FLOPs utilisation
needs the device's peak, so it is printed only where --peak_tflops is given.
"""

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from configs import base  # noqa: E402
from gramjax import losses  # noqa: E402
from gramjax import train  # noqa: E402

LOSSES = {'mse': {}, 'nll': {}, 'gram': {'units': '[-1,1]'},
          'gram_vjp': {'units': '[-1,1]'}, 'loss_rescale': {'units': '[-1,1]'},
          'beta_nll': {'beta': 0.5}}


def step_flops(step, state, batch) -> float | None:
  try:
    cost = step.lower(state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get('flops', 0.0)) or None
  except Exception:  # Not every backend reports it.
    return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=5,
                      help='timed steps per loss per round')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--crop', type=int, default=96)
  parser.add_argument('--peak_tflops', type=float, default=None,
                      help='device peak (e.g. 989 for H100 bf16 dense)')
  parser.add_argument('--json', default=None)
  args = parser.parse_args()

  config = base.get_config()
  graphdef, params, model_state, init = train.model_and_state_fn(config)
  tx = train.make_optimizer(config.optimizer)
  schedule = train.make_schedule(config.optimizer)
  rng = np.random.default_rng(0)
  batch = {'hr': jnp.asarray(rng.integers(
      0, 256, (args.batch, args.crop, args.crop, 3), dtype=np.uint8))}
  steps, states, results = {}, {}, {}
  for name, options in LOSSES.items():
    step = jax.jit(train.make_train_step(
        graphdef, tx, losses.make_pixel_loss(name, options), schedule,
        scale=4, round_lr=True, attention_units='[-1,1]'))
    state = jax.jit(init)(params, model_state)
    t = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    results[name] = {'compile_s': time.perf_counter() - t,
                     'flops_per_step': step_flops(step, state, batch),
                     'times': []}
    steps[name], states[name] = step, state
  for _ in range(args.rounds):
    for name in LOSSES:
      t = time.perf_counter()
      for _ in range(args.steps):
        states[name], m = steps[name](states[name], batch)
      jax.block_until_ready(m)
      results[name]['times'].append((time.perf_counter() - t) / args.steps)
  dev = jax.devices()[0]
  report = {'device': f'{dev.platform} ({dev.device_kind})',
            'devices': jax.device_count(), 'batch': args.batch,
            'crop': args.crop, 'losses': {}}
  mse_time = float(np.median(results['mse']['times']))
  for name, r in results.items():
    t = float(np.median(r['times']))
    entry = {'ms_per_step': 1e3 * t, 'images_per_s': args.batch / t,
             'compile_s': r['compile_s'], 'ratio_to_mse': t / mse_time,
             'gflops_per_step': (r['flops_per_step'] or 0) / 1e9 or None}
    if args.peak_tflops and r['flops_per_step']:
      entry['mfu'] = r['flops_per_step'] / t / (args.peak_tflops * 1e12)
    report['losses'][name] = entry
  print(json.dumps(report, indent=2))
  print(f'\npaper SRResNet x4, batch {args.batch} x {args.crop} px on '
        f'{report["device"]}:')
  print(f'{"loss":<14}{"ms/step":>10}{"img/s":>9}{"vs mse":>8}'
        f'{"compile s":>11}')
  for name, e in report['losses'].items():
    print(f'{name:<14}{e["ms_per_step"]:>10.1f}{e["images_per_s"]:>9.2f}'
          f'{e["ratio_to_mse"]:>8.3f}{e["compile_s"]:>11.1f}')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
