"""What closes the CPU gap between the XLA step and the PyTorch reference:
benchmarks/bench_train.py (MSE and GRAM, PyTorch in the same run) once per
XLA:CPU setting, each in a fresh process (XLA reads its flags at start-up).

    python benchmarks/bench_xla_cpu.py [--steps=3] [--rounds=2] [--json=FILE]

Prints per setting the gramjax and PyTorch ms/step and their ratio; the
ratio is the figure to compare across settings (each is measured against
its own interleaved PyTorch run).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
# bench_train.py splits the CPU into one device per core unless XLA_FLAGS
# sets a device count, as training does (config.cpu_devices).
VARIANTS = {
    'one device': '--xla_force_host_platform_device_count=1',
    'default (2 devices)': '',
    'XNNPACK convolutions': (
        '--xla_cpu_experimental_xnn_fusion_type=individual_convolution'),
    'YNNPACK convolutions': (
        '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'),
    'oneDNN custom calls': ('--xla_cpu_use_onednn=true '
                            '--xla_cpu_experimental_onednn_custom_call=true'),
    'fast math': '--xla_cpu_enable_fast_math=true',
    'concurrency scheduler': (
        '--xla_cpu_enable_concurrency_optimized_scheduler=true'),
}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--steps', type=int, default=3)
  p.add_argument('--rounds', type=int, default=2)
  p.add_argument('--variants', default=','.join(VARIANTS),
                 help='comma-separated names of VARIANTS')
  p.add_argument('--json', default=None)
  args = p.parse_args()
  rows = []
  for name in args.variants.split(','):
    flags = VARIANTS[name]
    with tempfile.TemporaryDirectory() as tmp:
      out = pathlib.Path(tmp) / 'r.json'
      env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS='cpu')
      run = subprocess.run(
          [sys.executable, str(ROOT / 'benchmarks' / 'bench_train.py'),
           '--losses=mse,gram', '--reference=torch', f'--steps={args.steps}',
           f'--rounds={args.rounds}', f'--json={out}'],
          env=env, capture_output=True, text=True, check=False)
      if run.returncode:
        print(f'{name}: failed\n{run.stderr[-1500:]}', file=sys.stderr)
        rows.append({'variant': name, 'xla_flags': flags, 'failed': True})
        continue
      r = json.loads(out.read_text())
    row = {'variant': name, 'xla_flags': flags, 'device': r['device']}
    for loss in ('mse', 'gram'):
      row[f'{loss}_ms'] = r['losses'][loss]['ms_per_step']
      row[f'{loss}_torch_ms'] = r['reference']['losses'][loss]['ms_per_step']
      row[f'{loss}_ratio'] = r['reference']['losses'][loss][
          'gramjax_time_over_torch']
    rows.append(row)
    print(f'{name}: mse {row["mse_ms"]:.0f} ms vs torch '
          f'{row["mse_torch_ms"]:.0f} ms ({row["mse_ratio"]:.2f}); gram '
          f'{row["gram_ms"]:.0f} vs {row["gram_torch_ms"]:.0f} '
          f'({row["gram_ratio"]:.2f})', file=sys.stderr, flush=True)
  print(json.dumps(rows, indent=2))
  print(f'\n{"XLA:CPU setting":<24}{"mse ms":>8}{"torch":>8}{"ratio":>7}'
        f'{"gram ms":>9}{"torch":>8}{"ratio":>7}')
  for row in rows:
    if row.get('failed'):
      print(f'{row["variant"]:<24}  failed')
      continue
    print(f'{row["variant"]:<24}{row["mse_ms"]:>8.0f}{row["mse_torch_ms"]:>8.0f}'
          f'{row["mse_ratio"]:>7.2f}{row["gram_ms"]:>9.0f}'
          f'{row["gram_torch_ms"]:>8.0f}{row["gram_ratio"]:>7.2f}')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == '__main__':
  main()
