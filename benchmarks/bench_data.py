"""Data-path benchmark: on-device LR degradation and crop throughput.

    python benchmarks/bench_data.py [--images=DIR] [--repeats=50]

Prints, in one run (ratios are what to compare; these machines are noisy):
  * the time to make LR inputs for a batch of 16 96x96 HR crops on the
    default JAX device with MATLAB-bicubic matrices (jitted), next to
    jax.image.resize(antialias=True) for scale;
  * training crops per second when each crop decodes its image file, when
    images are decoded once into memory, and when read from a prepared
    (memory-mapped) folder;
  * the training pipeline (grain, batches of 16 96x96 crops with
    augmentation) reading a prepared folder, against the rate at which the
    paper-size train step consumes crops on this machine.
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
from gramjax.core import losses  # noqa: E402
from gramjax.core import pixels  # noqa: E402
from gramjax.state import train_state as state_lib  # noqa: E402
from gramjax.training import loop as train  # noqa: E402
from gramjax.data import prepared  # noqa: E402


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
  ours = jax.jit(lambda x: pixels.downscale(x, 4, jnp))
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
    prepared.prepare(folder, tmp, progress=False)
    _, mapped, _ = prepared.open_prepared(tmp)
    mmap = crops_per_second(
        lambda: random_crop(mapped[rng.integers(len(mapped))]))
  print(f'96x96 training crops from {len(paths)} images in {folder}:')
  print(f'  decode per crop  {decode:9.1f} crops/s')
  print(f'  decoded once     {memory:9.1f} crops/s ({memory / decode:.0f}x)')
  print(f'  prepared (mmap)  {mmap:9.1f} crops/s ({mmap / decode:.0f}x)')


def bench_pipeline_vs_step(folder, steps):
  """Pipeline supply vs paper-model train-step demand, in crops/s."""
  from configs import gram as gram_config  # pylint: disable=g-import-not-at-top
  config = gram_config.get_config()
  with tempfile.TemporaryDirectory() as tmp:
    prepared.prepare(folder, tmp, progress=False)
    _, mapped, _ = prepared.open_prepared(tmp)
    it = iter(data.train_dataset(mapped, crop=96, batch_size=16, seed=0))
    next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3.0:
      next(it)
      n += 16
    supply = n / (time.perf_counter() - start)
    recipe = state_lib.build(config)
    step = jax.jit(train.make_train_step(
        recipe.graphdef, recipe.tx,
        losses.make_pixel_loss('gram', {'units': '[-1,1]'}), recipe.schedule,
        scale=4, round_lr=True, attention_units='[-1,1]'), donate_argnums=0)
    state = jax.jit(recipe.init)(recipe.params, recipe.model_state)
    batch = {'hr': jnp.asarray(next(it)['hr'])}
    state, m = step(state, batch)
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(steps):
      state, m = step(state, {'hr': jnp.asarray(next(it)['hr'])})
    jax.block_until_ready(m)
    step_time = (time.perf_counter() - start) / steps
    if hasattr(it, 'close'):
      it.close()
  demand = 16 / step_time
  print('paper SRResNet x4 (GRAM), batch 16 x 96 px, prepared data:')
  print(f'  pipeline supplies  {supply:9.1f} crops/s')
  print(f'  train step needs   {demand:9.1f} crops/s ({step_time:.2f} s/step)')
  print(f'  supply / demand    {supply / demand:9.1f}x (target >= 5x)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--images', default=None)
  parser.add_argument('--repeats', type=int, default=50)
  parser.add_argument('--steps', type=int, default=3,
                      help='paper-model train steps to time')
  args = parser.parse_args()
  bench_lr(args.repeats)
  folder = args.images
  shared = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
  if folder is None and (shared / 'SunHays80').is_dir():
    folder = shared / 'SunHays80'
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(folder or synthetic_folder(pathlib.Path(tmp)))
    bench_crops(folder)
    bench_pipeline_vs_step(folder, args.steps)


if __name__ == '__main__':
  main()
