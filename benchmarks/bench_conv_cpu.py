"""Where a CPU train step's time goes: each convolution shape of the paper
SRResNet (batch 16, 96 px HR), forward, input gradient and kernel gradient,
in JAX (NHWC, jitted) and PyTorch (channels_last), timed interleaved.

    python benchmarks/bench_conv_cpu.py [--repeats=5] [--json=FILE]
        [--xla_flags='--xla_cpu_...']   (set before JAX starts)

Prints per shape and pass: ms in each framework, their ratio, and the
shape's share of a whole step (time x how often the model uses the shape),
so the table says which convolutions account for the gap between the two
frameworks' train steps (benchmarks/bench_train.py).
"""

import argparse
import json
import os
import pathlib
import sys
import time


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--xla_flags', default=None)
  p.add_argument('--json', default=None)
  args = p.parse_args()
  if args.xla_flags is not None:
    os.environ['XLA_FLAGS'] = args.xla_flags
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  n = args.batch
  # (name, spatial size, cin, cout, kernel, uses per step)
  shapes = [('first 9x9 3->64 @24', 24, 3, 64, 9, 1),
            ('trunk 3x3 64->64 @24', 24, 64, 64, 3, 33),
            ('up 3x3 64->256 @24', 24, 64, 256, 3, 1),
            ('up 3x3 64->256 @48', 48, 64, 256, 3, 1),
            ('head 9x9 64->3 @96', 96, 64, 3, 9, 2)]
  rng = np.random.default_rng(0)
  rows = []

  def clock(fn, sync):
    fn()
    sync(fn())
    times = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      sync(fn())
      times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))

  for name, size, cin, cout, k, uses in shapes:
    x = rng.standard_normal((n, size, size, cin), dtype=np.float32)
    w = rng.standard_normal((k, k, cin, cout), dtype=np.float32) * 0.05
    g = rng.standard_normal((n, size, size, cout), dtype=np.float32)

    def conv(x_, w_):
      return jax.lax.conv_general_dilated(
          x_, w_, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

    jx, jw, jg = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
    fwd = jax.jit(conv)
    dx = jax.jit(lambda a, b, c: jax.vjp(lambda a_: conv(a_, b), a)[1](c)[0])
    dw = jax.jit(lambda a, b, c: jax.vjp(lambda b_: conv(a, b_), b)[1](c)[0])
    jsync = jax.block_until_ready

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)
    tg = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    pad = k // 2
    tsync = lambda r: r
    with torch.no_grad():
      t_fwd = lambda: F.conv2d(tx, tw, padding=pad)
    t_dx = lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, padding=pad)
    t_dw = lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, padding=pad)

    for label, jf, tf in (('forward', lambda: fwd(jx, jw), t_fwd),
                          ('input grad', lambda: dx(jx, jw, jg), t_dx),
                          ('kernel grad', lambda: dw(jx, jw, jg), t_dw)):
      if name.startswith('first') and label == 'input grad':
        continue  # The LR input needs no gradient.
      j_ms = clock(jf, jsync)
      t_ms = clock(tf, tsync)
      rows.append({'conv': name, 'pass': label, 'uses': uses,
                   'jax_ms': j_ms, 'torch_ms': t_ms, 'ratio': j_ms / t_ms})

  jax_total = sum(r['jax_ms'] * r['uses'] for r in rows)
  torch_total = sum(r['torch_ms'] * r['uses'] for r in rows)
  for r in rows:
    r['jax_share'] = r['jax_ms'] * r['uses'] / jax_total
    r['gap_share'] = ((r['jax_ms'] - r['torch_ms']) * r['uses'] /
                      (jax_total - torch_total)
                      if jax_total != torch_total else 0.0)
  report = {'batch': n, 'xla_flags': os.environ.get('XLA_FLAGS', ''),
            'jax': jax.__version__, 'torch': torch.__version__,
            'threads_torch': torch.get_num_threads(),
            'convs_jax_ms_per_step': jax_total,
            'convs_torch_ms_per_step': torch_total, 'rows': rows}
  print(json.dumps(report, indent=2))
  print(f'\nconvolutions of one train step, batch {n} '
        f'(XLA_FLAGS={report["xla_flags"] or "none"}):')
  print(f'{"conv":<24}{"pass":<13}{"uses":>5}{"jax ms":>9}{"torch ms":>10}'
        f'{"jax/torch":>10}{"share":>7}{"of gap":>8}')
  for r in rows:
    print(f'{r["conv"]:<24}{r["pass"]:<13}{r["uses"]:>5}{r["jax_ms"]:>9.2f}'
          f'{r["torch_ms"]:>10.2f}{r["ratio"]:>10.2f}'
          f'{100 * r["jax_share"]:>6.0f}%{100 * r["gap_share"]:>7.0f}%')
  print(f'{"all convolutions":<42}{jax_total:>9.0f}{torch_total:>10.0f}'
        f'{jax_total / torch_total:>10.2f}')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
  sys.exit(main())
