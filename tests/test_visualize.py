"""The uncertainty map's colours and legend, and the one PNG writer."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gramjax.core import visualize


def test_legend_helpers():
  assert visualize.nice_ticks(3.7) == [0.0, 1.0, 2.0, 3.0]
  assert visualize.nice_ticks(12.3) == [0.0, 5.0, 10.0]
  assert visualize.nice_ticks(0.37) == [0.0, 0.1, 0.2, 0.3]
  values = np.linspace(0, 20, 300 * 200).reshape(200, 300)
  plain = visualize.colormap(values, 10.0)
  np.testing.assert_array_equal(visualize.colormap_rows(values, 10.0, rows=7),
                                plain)
  with_bar = visualize.add_colorbar(plain, 10.0)
  # The legend is a strip below the map, never over it: the map's pixels
  # are all there, unchanged, above it.
  assert with_bar.shape[1] == plain.shape[1]
  assert with_bar.shape[0] > plain.shape[0]
  np.testing.assert_array_equal(with_bar[:200], plain)
  top, left, bottom, right = visualize.legend_box(plain.shape, 10.0)
  assert 200 < top < bottom <= with_bar.shape[0]
  assert right <= with_bar.shape[1] and left > 300 // 3
  strip = with_bar[200:]
  inside = np.zeros(strip.shape[:2], bool)
  inside[top - 200:bottom - 200, left:right] = True
  assert (strip[~inside] == 0).all()          # Black around the legend.
  assert (strip[inside] != 0).any(axis=-1).mean() > 0.1   # Bar, text.
  # A map narrower than the legend: padded on the right, map unchanged.
  tiny = visualize.colormap(values[:40, :40], 10.0)
  small = visualize.add_colorbar(tiny, 10.0)
  assert small.shape[0] > 40 and small.shape[1] > 40
  np.testing.assert_array_equal(small[:40, :40], tiny)
  assert (small[:40, 40:] == 0).all()
  # A legend scales with big maps.
  assert visualize.legend_scale(6000, 8000) > visualize.legend_scale(600, 800)


def test_save_png_modes_and_text(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
  visualize.save_png(tmp_path / 'rgb.png', rgb)
  with Image.open(tmp_path / 'rgb.png') as im:
    assert im.format == 'PNG' and im.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(im), rgb)
  grey = rgb[..., 0]
  visualize.save_png(tmp_path / 'grey.png', grey, 'L',
                     {'sigma_max_grey': '3'})
  with Image.open(tmp_path / 'grey.png') as im:
    assert im.mode == 'L' and im.text == {'sigma_max_grey': '3'}
    np.testing.assert_array_equal(np.asarray(im), grey)
