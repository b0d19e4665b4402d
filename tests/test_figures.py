"""Pictures: the Fig. 3-style comparison and the metric plots."""

import sys

import numpy as np
import pytest
from PIL import Image

from gramjax.reporting import figures
from gramjax.metrics import uncertainty
from gramjax.core.errors import UserError


def test_hardest_crop_finds_the_window_where_bicubic_errs():
  hr = np.zeros((120, 150, 3), np.uint8)
  bic = hr.copy()
  bic[70:90, 100:120] = 50  # All the error is here.
  top, left, size = figures.hardest_crop(hr, bic, 20)
  assert (top, left, size) == (70, 100, 20)
  # A crop larger than the image shrinks to fit.
  assert figures.hardest_crop(hr[:30, :40], bic[:30, :40], 96)[2] == 30


def views(sigma_scale=(1.0, 2.0)):
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
  bic = np.clip(hr.astype(int) + rng.integers(-20, 20, hr.shape), 0,
                255).astype(np.uint8)
  sigma = rng.uniform(1, 10, hr.shape[:2])
  models = [figures.ModelView(f'm{i}', hr, sigma * k)
            for i, k in enumerate(sigma_scale)]
  return [figures.ImageView('a.png', hr, bic, models)]


def test_comparison_figure_layout_and_shared_sigma_scale(tmp_path):
  v = views()
  out = figures.comparison_figure(v, tmp_path / 'fig.png', crop=32, zoom=2)
  img = np.asarray(Image.open(out).convert('RGB')).astype(int)
  cell, pad, label_h = 64, 6, 22
  # Columns: thumbnail, HR, bicubic, then mean and sigma per model.
  assert img.shape[1] == 7 * (cell + pad) + pad
  top, left, size = figures.hardest_crop(v[0].hr, v[0].bicubic, 32)
  hr_panel = img[label_h:label_h + cell, pad + (cell + pad):][:, :cell]
  want = np.kron(v[0].hr[top:top + size, left:left + size],
                 np.ones((2, 2, 1), int))
  np.testing.assert_array_equal(hr_panel, want)
  # m1's sigma is twice m0's on one shared scale: its panel is brighter.
  sig = lambda col: img[label_h:label_h + cell,
                        pad + col * (cell + pad):][:, :cell].mean()
  assert sig(6) > sig(4) + 10


def test_plots_are_written(tmp_path):
  pytest.importorskip('matplotlib')
  rng = np.random.default_rng(0)
  sigma = rng.uniform(1, 5, 5000)
  err = rng.normal(0, sigma)
  cal = uncertainty.calibration_curve(err, sigma)
  sp = uncertainty.sparsification_curves(err, sigma)
  a = figures.reliability_diagram({'m': (cal.expected, cal.observed)},
                                  tmp_path / 'r.png')
  b = figures.sparsification_plot({'m': sp}, tmp_path / 's.png')
  for path in (a, b):
    img = np.asarray(Image.open(path).convert('RGB'))
    assert img.shape[0] > 200 and img.std() > 10  # A drawn plot.


def test_plots_without_matplotlib_say_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'matplotlib', None)
  with pytest.raises(UserError, match=r"\.\[plots\]"):
    figures.reliability_diagram({}, tmp_path / 'r.png')
