"""Data-path benchmark: on-device LR degradation and crop throughput.

    python benchmarks/bench_data.py [--images=DIR] [--repeats=50]

Prints, in one run (ratios are what to compare; these machines are noisy):
  * the time to make LR inputs for a batch of 16 96x96 HR crops on the
    default JAX device with MATLAB-bicubic matrices (jitted), next to
    jax.image.resize(antialias=True) for scale;
  * training crops per second when each crop decodes its image file, when
    images are decoded once into memory, and when read from a prepared
    (memory-mapped) folder.
Uses ../shared/data/SunHays80 when present, else synthetic 1024x768 PNGs.
"""

import argparse
import pathlib
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gramjax import data  # noqa: E402
from gramjax import prepare  # noqa: E402
from gramjax import train  # noqa: E402


def timeit(fn, repeats):
  fn()  # Warm-up / compile.
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def bench_lr(repeats):
  rng = np.random.default_rng(0)
  hr = jnp.asarray(rng.integers(0, 256, (16, 96, 96, 3), dtype=np.uint8))
  ours = jax.jit(lambda x: train.make_lr_hr(x, 4)[0])
  ref = jax.jit(lambda x: jax.image.resize(
      x.astype(jnp.float32) / 255.0, (16, 24, 24, 3), 'bicubic',
      antialias=True))
  t_ours = timeit(lambda: ours(hr).block_until_ready(), repeats)
  t_ref = timeit(lambda: ref(hr).block_until_ready(), repeats)
  dev = jax.devices()[0]
  print(f'LR of 16x96x96x3 HR crops on {dev.platform} ({dev.device_kind}):')
  print(f'  MATLAB-bicubic matrices (ours) {t_ours * 1e3:8.3f} ms/batch')
  print(f'  jax.image.resize antialias     {t_ref * 1e3:8.3f} ms/batch '
        f'(ours / resize = {t_ours / t_ref:.2f}x)')


def synthetic_folder(root, n=12):
  rng = np.random.default_rng(0)
  for i in range(n):
    small = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(small).resize((1024, 768), Image.BICUBIC).save(
        root / f'{i:03d}.png')
  return root


def crops_per_second(fn, seconds=3.0):
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    fn()
    n += 1
  return n / (time.perf_counter() - start)


def bench_crops(folder):
  paths = data.resolve_images(str(folder))
  rng = np.random.default_rng(0)
  crop = 96

  def random_crop(img):
    h, w = img.shape[:2]
    t, l = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    return np.ascontiguousarray(img[t:t + crop, l:l + crop])

  decode = crops_per_second(
      lambda: random_crop(data.load_image(paths[rng.integers(len(paths))])))
  images = [data.load_image(p) for p in paths]
  memory = crops_per_second(
      lambda: random_crop(images[rng.integers(len(images))]))
  with tempfile.TemporaryDirectory() as tmp:
    prepare.prepare(folder, tmp, progress=False)
    _, mapped, _ = prepare.open_prepared(tmp)
    mmap = crops_per_second(
        lambda: random_crop(mapped[rng.integers(len(mapped))]))
  print(f'96x96 training crops from {len(paths)} images in {folder}:')
  print(f'  decode per crop  {decode:9.1f} crops/s')
  print(f'  decoded once     {memory:9.1f} crops/s ({memory / decode:.0f}x)')
  print(f'  prepared (mmap)  {mmap:9.1f} crops/s ({mmap / decode:.0f}x)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--images', default=None)
  parser.add_argument('--repeats', type=int, default=50)
  args = parser.parse_args()
  bench_lr(args.repeats)
  folder = args.images
  shared = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
  if folder is None and (shared / 'SunHays80').is_dir():
    folder = shared / 'SunHays80'
  if folder is None:
    with tempfile.TemporaryDirectory() as tmp:
      bench_crops(synthetic_folder(pathlib.Path(tmp)))
  else:
    bench_crops(pathlib.Path(folder))


if __name__ == '__main__':
  main()
