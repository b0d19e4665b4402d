"""Evaluation-speed benchmark: bicubic PSNR/SSIM of 1024x768 images.

    python benchmarks/bench_evaluate.py [--images=8] [--scale=4]

Prints, in one run:
  * seconds per image of ``evaluation.evaluate_image`` (bicubic baseline:
    decode, MATLAB-bicubic LR, bicubic upscaling, PSNR/SSIM on Y) over a
    temporary folder of 1024x768 RGB PNGs, (a) with the arithmetic of
    commit 6d47940 (``imresize``: dense weight matrices applied by
    ``np.einsum``; SSIM's window: shifted multiply-adds; read with ``git
    show`` and patched in) and (b) with the current code; images alternate between the two so that load on
    the machine hits both alike; one untimed warm-up image each; process
    start-up and imports are not timed;
  * the ratio, and where each run's time goes (imresize, PSNR/SSIM, decode);
  * imresize alone on a 1024x768x3 float64 image, x1/4 and x4, both codes;
  * both runs' PSNR/SSIM, asserting that they agree to the 4th decimal;
  * with ``../shared/data`` present: bicubic Set5/Set14 against Table I.
The images are crops of ``../shared/data/SunHays80`` (resized to cover
1024x768; written only to a temporary folder) when it exists, else smooth
random images.
"""

from __future__ import annotations

import argparse
import collections
import functools
import pathlib
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from gramjax import data  # noqa: E402
from gramjax.evaluation import protocol as evaluation  # noqa: E402
from gramjax.core import imresize  # noqa: E402
from gramjax.metrics import quality as metrics  # noqa: E402

BASELINE = '6d47940'
SHARED = REPO.parent / 'shared' / 'data'
WIDTH, HEIGHT = 1024, 768
# x4 bicubic PSNR (dB) / SSIM on Y: Table I of the paper, and gramjax's.
TABLE_I = {'Set5': (28.42, 0.8099), 'Set14': (26.00, 0.7025)}
GRAMJAX_6D47940 = {'Set5': (28.42, 0.8102), 'Set14': (25.99, 0.7024)}
SUFFIXES = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff')


def baseline_code():
  """The arithmetic of commit 6d47940 that has changed since, as patches
  ``[(module, name, function)]`` (imresize's ``imresize`` and SSIM's
  ``metrics._filter_valid``), or (None, the reason) without git."""
  patches = []
  for module, name in ((imresize, 'imresize'), (metrics, '_filter_valid')):
    path = f'gramjax/{module.__name__.rpartition(".")[2]}.py'
    try:
      source = subprocess.run(
          ['git', 'show', f'{BASELINE}:{path}'], cwd=REPO,
          capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
      detail = getattr(e, 'stderr', '') or e
      return None, f'git show {BASELINE}:{path} failed: {detail}'
    old = types.ModuleType(f'{module.__name__}_{BASELINE}')
    sys.modules[old.__name__] = old      # For its dataclasses.
    exec(compile(source, f'{BASELINE}:{path}', 'exec'),  # noqa: S102
         old.__dict__)
    patches.append((module, name, getattr(old, name)))
  return patches, None


def make_folder(root: pathlib.Path, n: int) -> str:
  """Writes n 1024x768 RGB PNGs to root; returns where they came from."""
  sources = sorted(p for p in (SHARED / 'SunHays80').glob('*')
                   if p.suffix.lower() in SUFFIXES)
  rng = np.random.default_rng(0)
  for i in range(n):
    if sources:
      img = Image.open(sources[i % len(sources)]).convert('RGB')
      cover = max(WIDTH / img.width, HEIGHT / img.height)
      size = (max(WIDTH, round(img.width * cover)),
              max(HEIGHT, round(img.height * cover)))
      img = img.resize(size, Image.BICUBIC)
      left, top = (size[0] - WIDTH) // 2, (size[1] - HEIGHT) // 2
      img = img.crop((left, top, left + WIDTH, top + HEIGHT))
    else:
      small = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), np.uint8)
      img = Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BICUBIC)
    img.save(root / f'{i:03d}.png')
  if sources:
    return f'crops of {SHARED / "SunHays80"}'
  return 'smooth random images (no ../shared/data/SunHays80)'


class StageTimer:
  """Accumulates the time spent in named module functions (patched)."""

  STAGES = (('imresize', imresize, 'imresize'),
            ('PSNR/SSIM', metrics, 'measure'),
            ('decode', data, 'load_image'))

  def __init__(self):
    self.seconds = collections.Counter()
    self._saved = []

  def __enter__(self):
    for stage, module, name in self.STAGES:
      fn = getattr(module, name, None)
      if fn is None:
        continue
      self._saved.append((module, name, fn))
      setattr(module, name, self._wrap(stage, fn))
    return self

  def _wrap(self, stage, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
      start = time.perf_counter()
      try:
        return fn(*args, **kwargs)
      finally:
        self.seconds[stage] += time.perf_counter() - start
    return timed

  def __exit__(self, *exc):
    for module, name, fn in reversed(self._saved):
      setattr(module, name, fn)
    self._saved.clear()


def evaluate(path, scale, patches=None, timer=None):
  """(seconds, result) of one bicubic evaluate_image, with ``patches``
  (``baseline_code``) in place when given."""
  current = [(m, n, getattr(m, n)) for m, n, _ in patches or ()]
  for module, name, fn in patches or ():
    setattr(module, name, fn)
  try:
    if timer is not None:
      timer.__enter__()
    start = time.perf_counter()
    result = evaluation.evaluate_image(path, evaluation.Protocol(scale))
    seconds = time.perf_counter() - start
  finally:
    if timer is not None:
      timer.__exit__()
    for module, name, fn in current:
      setattr(module, name, fn)
  return seconds, result


def breakdown(timer: StageTimer, total: float, n: int) -> str:
  parts = [f'{stage} {s / n * 1e3:.0f} ms' for stage, s in
           timer.seconds.most_common()]
  rest = total - sum(timer.seconds.values())
  return ', '.join(parts + [f'other {rest / n * 1e3:.0f} ms'])


def bench_speed(n: int, scale: int) -> None:
  old, why_not = baseline_code()
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    origin = make_folder(root, n)
    paths = sorted(root.glob('*.png'))
    print(f'bicubic x{scale} evaluation of {n} {WIDTH}x{HEIGHT} RGB PNGs '
          f'({origin}), seconds per image:')
    runs = {'current': (None, StageTimer(), [], [])}
    if old is None:
      print(f'  before: skipped ({why_not})')
    else:
      runs = {f'{BASELINE}': (old, StageTimer(), [], []), **runs}
    for patches, _, _, _ in runs.values():
      evaluate(paths[0], scale, patches)                   # Warm-up.
    for path in paths:
      for patches, timer, times, results in runs.values():
        seconds, result = evaluate(path, scale, patches, timer)
        times.append(seconds)
        results.append(result)
    for name, (_, timer, times, results) in runs.items():
      psnr = np.mean([r.psnr for r in results])
      ssim = np.mean([r.ssim for r in results])
      print(f'  {name:>8}: {np.mean(times):7.3f} s/image (median '
            f'{np.median(times):.3f}); PSNR {psnr:.4f} dB, SSIM {ssim:.4f}')
      print(f'            {breakdown(timer, sum(times), len(times))}')
    if old is not None:
      (_, _, before, r_old), (_, _, after, r_new) = runs.values()
      print(f'  ratio {BASELINE} / current: '
            f'{np.mean(before) / np.mean(after):.1f}x')
      dpsnr = max(abs(a.psnr - b.psnr) for a, b in zip(r_old, r_new))
      dssim = max(abs(a.ssim - b.ssim) for a, b in zip(r_old, r_new))
      print(f'  largest per-image difference: PSNR {dpsnr:.1e} dB, '
            f'SSIM {dssim:.1e}')
      assert dpsnr < 5e-5 and dssim < 5e-5, (dpsnr, dssim)


def median_seconds(fn, repeats: int) -> float:
  fn()                                                     # Warm-up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def bench_imresize(scale: int) -> None:
  patches, _ = baseline_code()
  old = patches[0][2] if patches else None
  x = np.random.default_rng(0).random((HEIGHT, WIDTH, 3))
  lr = imresize.imresize(x, 1 / scale)
  print(f'imresize alone, float64, median ms (x1/{scale}: {WIDTH}x{HEIGHT} '
        f'in; x{scale}: {WIDTH}x{HEIGHT} out):')
  for name, img, s in ((f'x1/{scale}', x, 1 / scale), (f'x{scale}', lr, scale)):
    now = median_seconds(lambda: imresize.imresize(img, s), 20)
    if old is None:
      print(f'  {name:>5}: now {now * 1e3:8.1f}')
      continue
    before = median_seconds(lambda: old(img, s), 3)
    print(f'  {name:>5}: {BASELINE} {before * 1e3:8.1f}, now {now * 1e3:6.1f}'
          f' ({before / now:.0f}x)')


def bench_sets(scale: int) -> None:
  if not SHARED.is_dir():
    print(f'Set5/Set14: skipped ({SHARED} not found)')
    return
  print(f'bicubic x{scale} on Y, PSNR (dB) / SSIM (Table I | gramjax at '
        f'{BASELINE} | now):')
  for name in TABLE_I:
    paths = sorted(p for p in (SHARED / name).glob('*')
                   if p.suffix.lower() in SUFFIXES)
    if not paths:
      print(f'  {name}: skipped (no images in {SHARED / name})')
      continue
    start = time.perf_counter()
    results = [evaluation.evaluate_image(p, evaluation.Protocol(scale))
               for p in paths]
    seconds = (time.perf_counter() - start) / len(paths)
    psnr = np.mean([r.psnr for r in results])
    ssim = np.mean([r.ssim for r in results])
    (p_paper, s_paper), (p_ours, s_ours) = TABLE_I[name], GRAMJAX_6D47940[
        name]
    print(f'  {name:<6} {p_paper:.2f}/{s_paper:.4f} | {p_ours:.2f}/'
          f'{s_ours:.4f} | {psnr:.2f}/{ssim:.4f} ({len(paths)} images, '
          f'{seconds:.3f} s/image)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--images', type=int, default=8,
                      help='1024x768 images to time (default 8)')
  parser.add_argument('--scale', type=int, default=4)
  args = parser.parse_args()
  bench_speed(args.images, args.scale)
  bench_imresize(args.scale)
  if args.scale == 4:
    bench_sets(args.scale)


if __name__ == '__main__':
  main()
