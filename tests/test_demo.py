"""The demo must look right (issue 13): no pixel-shuffle grid in its maps,
and it beats bicubic on its held-out photo and on Set5.

The grid measure: a x4 model's two x2 pixel shuffles imprint a pattern of
period 2 and 4 pixels. ``grid_ratio`` is the power at those periods'
frequencies over the median power of the neighbouring frequencies, along
each axis: about 1 for a picture without a grid (bicubic), hundreds to
thousands for the demo's maps before ICNR (docs/training.md, "The demo's
pictures").
"""

import json

import numpy as np
import pytest
from PIL import Image

from configs import demo as demo_config
from gramjax import data as data_lib
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation.protocol import Protocol
from gramjax.inference import predictor as inference
from gramjax.core import pixels
from tests.conftest import shared_data

PERIODS = (2, 4)       # The x2 x2 pixel shuffles of a x4 SRResNet.
NEIGHBOURS = range(2, 6)  # Bins 2..5 away on each side: the reference.
GRID_LIMIT = 10.0      # issue 13's bound; bicubic gives about 1.


def grey(img) -> np.ndarray:
  """uint8 (H, W) or (H, W, 3) picture -> float64 (H, W) luma (BT.601)."""
  img = np.asarray(img, np.float64)
  return img[..., :3] @ [0.299, 0.587, 0.114] if img.ndim == 3 else img


def periodic_bins(n: int) -> list[int]:
  """FFT bins of a length-n signal at frequencies k/p, p in PERIODS."""
  bins = {round(n * k / p) for p in PERIODS for k in range(1, p)}
  return sorted(b for b in bins if 0 < b < n)


def peak_ratios(power: np.ndarray) -> list[float]:
  """(n,) power spectrum -> power at each periodic bin over the median
  power of the bins 2..5 away from it on either side."""
  n = len(power)
  ratios = []
  for b in periodic_bins(n):
    near = [power[(b + s * d) % n] for d in NEIGHBOURS for s in (-1, 1)]
    ratios.append(float(power[b] / max(np.median(near), 1e-30)))
  return ratios


def grid_ratios(img) -> dict[str, float]:
  """The largest peak ratio of a picture, by kind of profile (see below).

  For each axis, two 1-D power spectra of the grey picture minus its mean:
  'lines', the spectrum of the picture averaged along the other axis (a
  grid of lines that run across the whole picture, as a sub-pixel
  convolution's checkerboard does, adds up coherently there), and 'power',
  the 2-D power summed over the other axis' frequencies (any pattern with
  these periods, diagonal ones included, diluted by the image's content).
  """
  g = grey(img)
  g = g - g.mean()
  power2d = np.abs(np.fft.fft2(g)) ** 2
  out = {'lines': 0.0, 'power': 0.0}
  for axis in (0, 1):
    lines = np.abs(np.fft.fft(g.mean(axis=1 - axis))) ** 2
    out['lines'] = max(out['lines'], *peak_ratios(lines))
    out['power'] = max(out['power'], *peak_ratios(power2d.sum(axis=1 - axis)))
  return out


def grid_ratio(img) -> float:
  """The grid measure of issue 13: the larger of ``grid_ratios``."""
  return max(grid_ratios(img).values())


def load_png(path) -> np.ndarray:
  return np.asarray(Image.open(path))


# ------------------------------------------------------- the measure --

@pytest.fixture(scope='module')
def chelsea():
  """The held-out photo's x4 bicubic upscale, uint8 (300, 448, 3)."""
  path = data_lib.resolve_images('builtin:skimage/chelsea', held_out=True)[0]
  hr = pixels.crop_to_scale(data_lib.load_image(path), 4)
  return pixels.upscale_bicubic(pixels.make_lr(hr, 4), 4)


@pytest.mark.parametrize('name', ['chelsea', 'coffee', 'astronaut'])
def test_grid_ratio_is_about_one_for_bicubic(name):
  """Bicubic x4 has no grid. (Not every HR photo passes: chelsea's has a
  faint column pattern of period 2, 'lines' 17, that x4 SR cannot see.)"""
  path = data_lib.resolve_images(f'builtin:skimage/{name}')[0]
  hr = pixels.crop_to_scale(data_lib.load_image(path), 4)
  ratios = grid_ratios(pixels.upscale_bicubic(pixels.make_lr(hr, 4), 4))
  assert 0.3 < ratios['lines'] < 3.0, ratios
  assert 0.3 < ratios['power'] < 3.0, ratios


@pytest.mark.parametrize('period', [2, 4])
def test_grid_ratio_sees_a_faint_grid_of_lines(chelsea, period):
  """One column and one row in every ``period`` brighter by 1.5 grey levels
  (0.6 % of the range) is what a sub-pixel checkerboard looks like."""
  bicubic = chelsea
  img = bicubic.astype(np.float64)
  img[:, period - 1::period] += 1.5
  img[period - 1::period, :] += 1.5
  assert grid_ratio(img) > 30 * GRID_LIMIT
  assert grid_ratios(img)['lines'] > grid_ratios(img)['power']


def test_grid_ratio_sees_a_diagonal_checkerboard(chelsea):
  """(-1)^(x+y) has no power along either axis alone: only 'power' sees it."""
  bicubic = chelsea
  h, w = bicubic.shape[:2]
  board = (-1.0) ** np.add.outer(np.arange(h), np.arange(w))
  img = grey(bicubic) + 3.0 * board
  ratios = grid_ratios(img)
  assert ratios['lines'] < 3.0
  assert ratios['power'] > GRID_LIMIT


def test_grid_ratio_ignores_bright_edges(chelsea):
  """A bright last row and column (the maps' borders) is no grid."""
  bicubic = chelsea
  img = grey(bicubic)
  img[-1, :] += 100.0
  img[:, -1] += 100.0
  assert grid_ratio(img) < 3.0


# -------------------------------------------------------- the demo --

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  """The demo trained end to end, as README runs it (a few minutes on 2
  cores), once for the tests below: (config, workdir)."""
  from gramjax.training import loop as train
  config = demo_config.get_config()
  workdir = tmp_path_factory.mktemp('demo')
  train.train_and_evaluate(config, workdir)
  return config, workdir


@pytest.mark.slow
def test_demo_mean_has_no_grid(demo):
  _, workdir = demo
  ratios = grid_ratios(load_png(workdir / 'samples' / 'chelsea_mean.png'))
  assert max(ratios.values()) < GRID_LIMIT, ratios


@pytest.mark.slow
def test_demo_uncertainty_map_has_no_grid(demo):
  _, workdir = demo
  ratios = grid_ratios(load_png(workdir / 'samples' /
                                'chelsea_uncertainty.png'))
  assert max(ratios.values()) < GRID_LIMIT, ratios


@pytest.mark.slow
def test_demo_beats_bicubic_on_its_held_out_photo(demo):
  _, workdir = demo
  (result,) = json.loads((workdir / 'samples' / 'samples.json').read_text())
  assert result['psnr_y'] > result['psnr_y_bicubic'], result


@pytest.mark.slow
def test_demo_beats_bicubic_on_set5(demo):
  config, workdir = demo
  folders = folders_lib.resolve_folders(str(shared_data('Set5')))
  protocol = Protocol(config.model.scale)
  ours = folders_lib.entries(folders_lib.evaluate_folders(
      folders, protocol, inference.load(workdir), quiet=True))
  bicubic = folders_lib.entries(folders_lib.evaluate_folders(
      folders, protocol, quiet=True))
  name = folders[0].name
  assert ours[name]['psnr'] > bicubic[name]['psnr'], (ours, bicubic)
