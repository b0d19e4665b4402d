"""Train-step cost of each loss on the paper SRResNet, and the same step in a
plain PyTorch loop, measured in one run.

    python benchmarks/bench_train.py [--losses=mse,nll,gram,...] [--steps=5]
        [--rounds=3] [--reference=auto|torch|none] [--json=FILE]

Compiles one jitted train step per loss (same model, batch 16 of 96x96 HR
crops, x4), starts ``benchmarks/torch_reference.py --serve`` (when torch is
installed: ``pip install -e '.[bench]'``) in a second process, then times
everything interleaved, round-robin (so machine noise hits every entry
alike; the idle process waits on a pipe). Prints JSON and a table: ms/step,
images/s, compile seconds, each loss's step time as a ratio to MSE's (the
paper's claim: GRAM's overhead over MSE is negligible) and gramjax's step
time as a ratio to PyTorch's for the same loss. MFU (model FLOPs counted
from the convolutions, over the device's dense bf16 peak) is printed for
GPUs we know the peak of, or wherever --peak_tflops is given.
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

# Leave GPU memory to the PyTorch process that runs beside this one.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')


def _early_int(flag: str, default: int) -> int:
  """A flag that must act before JAX starts (parsed again by argparse)."""
  for i, arg in enumerate(sys.argv):
    if arg.startswith(flag + '='):
      return int(arg.split('=', 1)[1])
    if arg == flag and i + 1 < len(sys.argv):
      return int(sys.argv[i + 1])
  return default


# As training does (config.cpu_devices): split a CPU host into devices.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gramjax.state import distributed  # noqa: E402

CPU_DEVICES = distributed.configure_cpu_devices(
    _early_int('--cpu_devices', 0), _early_int('--batch', 16))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
from configs import base  # noqa: E402
from gramjax.core import losses  # noqa: E402
from gramjax.state import train_state as state_lib  # noqa: E402
from gramjax.training import loop as train  # noqa: E402

OPTIONS = {'mse': {}, 'nll': {}, 'gram': {'units': '[-1,1]'},
           'gram_vjp': {'units': '[-1,1]'},
           'loss_rescale': {'units': '[-1,1]'}, 'beta_nll': {'beta': 0.5}}
# Dense bf16 peak (TFLOP/s) by device kind, for MFU.
PEAKS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0, 'L4': 121.0}


def compiled_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get('flops', 0.0)) or None
  except Exception:  # Not every backend reports it.
    return None


def model_flops(model, batch: int, crop: int, count_padding: bool = True
                ) -> float:
  """Analytic FLOPs of one train step of the SRResNet: 2 x MACs of every
  convolution, times 3 for forward + backward (input and kernel gradients;
  the LR input's gradient, which nobody computes, is left out). With
  ``count_padding=False`` only taps inside the image count (what XLA's
  cost analysis counts); MFU uses the usual dense count."""

  def macs(side, k, cin, cout):
    if count_padding:
      taps = side * side * k * k
    else:  # In-bounds taps of a 'SAME' k x k window, per axis, squared.
      taps = sum(min(side, i + k // 2 + 1) - max(0, i - k // 2)
                 for i in range(side)) ** 2
    return taps * cin * cout

  lr, c, scale = crop // model.scale, model.channels, model.scale
  first = macs(lr, model.first_kernel, 3, c)
  total = first + (2 * model.num_blocks + 1) * macs(lr, 3, c, c)  # Trunk.
  side, r = lr, (3 if scale == 3 else 2)
  for _ in range({2: 1, 3: 1, 4: 2, 8: 3}[scale]):
    total += macs(side, 3, c, c * r * r)
    side *= r
  total += 2 * macs(side, model.head_kernel, c, 3)  # Mean and log-variance.
  return 2.0 * batch * (3 * total - first)


def cpu_name() -> str:
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_name() -> str:
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return f'cpu ({cpu_name()}, {os.cpu_count()} cores)'
  return f'{dev.platform} ({dev.device_kind})'


class TorchWorker:
  """benchmarks/torch_reference.py --serve in a child process."""

  def __init__(self, losses_, args):
    device = 'cuda' if jax.devices()[0].platform == 'gpu' else 'cpu'
    cmd = [sys.executable, str(ROOT / 'benchmarks' / 'torch_reference.py'),
           '--serve', f'--losses={",".join(losses_)}',
           f'--batch={args.batch}', f'--crop={args.crop}',
           f'--device={device}',
           '--channels_last' if args.torch_channels_last
           else '--no-channels_last']
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError('the PyTorch reference failed to start (see above)')
    self.info = json.loads(line)
    self.info['device'] = device
    self.info['memory_format'] = ('channels_last' if args.torch_channels_last
                                  else 'NCHW')

  def run(self, loss: str, n: int) -> float:
    self.proc.stdin.write(f'{loss} {n}\n')
    self.proc.stdin.flush()
    return float(self.proc.stdout.readline())

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=60)


def torch_available() -> bool:
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    return True
  except ImportError:
    return False


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--losses', default=','.join(OPTIONS))
  parser.add_argument('--steps', type=int, default=5,
                      help='timed steps per entry per round')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--crop', type=int, default=96)
  parser.add_argument('--cpu_devices', type=int, default=0,
                      help='as config.cpu_devices: CPU devices to split the '
                      'batch over (0: one per core; 1: one device)')
  parser.add_argument('--dtype', default='float32',
                      help="model.compute_dtype ('bfloat16': mixed precision)")
  parser.add_argument('--reference', default='auto',
                      choices=['auto', 'torch', 'none'])
  parser.add_argument('--torch_channels_last',
                      action=argparse.BooleanOptionalAction, default=True)
  parser.add_argument('--peak_tflops', type=float, default=None,
                      help='device peak for MFU (default: known GPUs)')
  parser.add_argument('--label', default='', help='free text for the JSON')
  parser.add_argument('--json', default=None)
  args = parser.parse_args()
  names = [n for n in args.losses.split(',') if n]
  for n in names:
    if n not in OPTIONS:
      sys.exit(f'error: --losses: unknown {n!r}; choose from {list(OPTIONS)}')

  config = base.get_config()
  config.model.compute_dtype = args.dtype
  recipe = state_lib.build(config)
  graphdef, params, model_state = (recipe.graphdef, recipe.params,
                                   recipe.model_state)
  init, tx, schedule = recipe.init, recipe.tx, recipe.schedule
  # The training loop's layout: batch split over a 1-D mesh of every
  # device, state replicated.
  mesh = distributed.create_mesh()
  replicated = NamedSharding(mesh, P())
  rng = np.random.default_rng(0)
  batch = {'hr': jax.device_put(rng.integers(
      0, 256, (args.batch, args.crop, args.crop, 3), dtype=np.uint8),
                                NamedSharding(mesh, P('data')))}
  steps, states, results = {}, {}, {}
  for name in names:
    state = jax.jit(init, out_shardings=replicated)(params, model_state)
    t = time.perf_counter()
    step = jax.jit(train.make_train_step(
        graphdef, tx, losses.make_pixel_loss(name, OPTIONS[name]), schedule,
        scale=4, round_lr=True, attention_units='[-1,1]')
                   ).lower(state, batch).compile()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    results[name] = {'compile_s': time.perf_counter() - t,
                     'flops_per_step': compiled_flops(step), 'times': []}
    state, m = step(state, batch)  # One warm step after compilation.
    jax.block_until_ready(m)
    steps[name], states[name] = step, state

  torch_losses = [n for n in ('mse', 'gram') if n in names]
  worker = None
  if args.reference == 'torch' or (args.reference == 'auto' and
                                   torch_available() and torch_losses):
    worker = TorchWorker(torch_losses, args)
  torch_times = {n: [] for n in torch_losses} if worker else {}

  for _ in range(args.rounds):
    for name in names:
      t = time.perf_counter()
      for _ in range(args.steps):
        states[name], m = steps[name](states[name], batch)
      jax.block_until_ready(m)
      results[name]['times'].append((time.perf_counter() - t) / args.steps)
    time.sleep(0.2)  # Let this process's threads go idle before switching.
    for name in torch_times:
      torch_times[name].append(worker.run(name, args.steps) / args.steps)
    time.sleep(0.2)
  if worker:
    worker.close()

  dev = jax.devices()[0]
  peak = args.peak_tflops or next(
      (v for k, v in PEAKS.items() if k in dev.device_kind), None)
  report = {'label': args.label, 'device': device_name(),
            'devices': jax.device_count(), 'jax': jax.__version__,
            'cpu_devices': CPU_DEVICES,
            'xla_flags': os.environ.get('XLA_FLAGS', ''),
            'batch': args.batch, 'crop': args.crop, 'dtype': args.dtype,
            'steps_per_round': args.steps, 'rounds': args.rounds,
            'peak_tflops': peak, 'losses': {}}
  flops = model_flops(config.model, args.batch, args.crop)
  base_name = 'mse' if 'mse' in names else names[0]
  base_time = float(np.median(results[base_name]['times']))
  for name, r in results.items():
    t = float(np.median(r['times']))
    entry = {'ms_per_step': 1e3 * t, 'steps_per_s': 1.0 / t,
             'images_per_s': args.batch / t, 'compile_s': r['compile_s'],
             f'ratio_to_{base_name}': t / base_time,
             'xla_gflops_per_step': (r['flops_per_step'] or 0) / 1e9 or None,
             'model_gflops_per_step': flops / 1e9,
             'model_tflops_per_s': flops / t / 1e12}
    if peak:
      entry['mfu'] = flops / t / (peak * 1e12)
    report['losses'][name] = entry
  report['overhead'] = {f'{n}_over_{base_name}':
                        report['losses'][n][f'ratio_to_{base_name}']
                        for n in names if n != base_name}
  if 'nll' in names:  # Against the plain NLL, which has the same two heads.
    nll_ms = report['losses']['nll']['ms_per_step']
    report['overhead'].update({
        f'{n}_over_nll': report['losses'][n]['ms_per_step'] / nll_ms
        for n in names if n not in ('nll', 'mse')})
  if worker:
    ref = {'framework': f'torch {worker.info["torch"]}',
           'device': worker.info['device'],
           'memory_format': worker.info['memory_format'],
           'threads': worker.info['threads'], 'losses': {}}
    for name, times in torch_times.items():
      t = float(np.median(times))
      ref['losses'][name] = {
          'ms_per_step': 1e3 * t, 'images_per_s': args.batch / t,
          'gramjax_time_over_torch':
              report['losses'][name]['ms_per_step'] / (1e3 * t)}
    report['reference'] = ref

  print(json.dumps(report, indent=2))
  print(f'\npaper SRResNet x4, batch {args.batch} x {args.crop} px, '
        f'{args.dtype}, on {report["device"]}'
        f'{f" split over {jax.device_count()} devices" if jax.device_count() > 1 else ""}'
        f'{" with XLA_FLAGS=" + report["xla_flags"] if report["xla_flags"] else ""}:')
  print(f'{"loss":<14}{"ms/step":>10}{"img/s":>9}{"vs " + base_name:>8}'
        f'{"compile s":>11}{"TFLOP/s":>9}{"MFU":>8}')
  for name, e in report['losses'].items():
    mfu = f'{100 * e["mfu"]:.1f}%' if 'mfu' in e else '-'
    print(f'{name:<14}{e["ms_per_step"]:>10.1f}{e["images_per_s"]:>9.2f}'
          f'{e[f"ratio_to_{base_name}"]:>8.3f}{e["compile_s"]:>11.1f}'
          f'{e["model_tflops_per_s"]:>9.2f}{mfu:>8}')
  if worker:
    print(f'PyTorch reference ({report["reference"]["framework"]}, '
          f'{report["reference"]["memory_format"]}, eager):')
    for name, e in report['reference']['losses'].items():
      print(f'{name:<14}{e["ms_per_step"]:>10.1f}{e["images_per_s"]:>9.2f}'
            f'   gramjax/torch time {e["gramjax_time_over_torch"]:.2f}')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
