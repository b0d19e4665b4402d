"""Figures for papers and reports.

* ``comparison_figure``: like the GRAM paper's Fig. 3 — for chosen images,
  the same crop of HR, bicubic, and each model's mean and uncertainty map
  side by side (PIL only; no plotting library needed).
* ``reliability_diagram`` and ``sparsification_plot``: line plots of the
  uncertainty metrics (``gramjax.metrics.uncertainty``); they need matplotlib
  (``pip install -e '.[plots]'``) and raise ``UserError`` saying so.
* ``folder_plots`` (both plots of one folder for several models) and
  ``comparison_views`` (what ``comparison_figure`` draws, from files):
  what ``gramjax.evaluate --figures`` and ``gramjax.report`` write.

Units: images are uint8 RGB in [0, 255]; sigma maps are in grey levels.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gramjax import data as data_lib
from gramjax.evaluation import folders as folders_lib
from gramjax.core import pixels
from gramjax.core import visualize
from gramjax.core.errors import UserError
from gramjax.metrics import uncertainty


@dataclasses.dataclass
class ModelView:
  name: str
  sr: np.ndarray      # uint8 (H, W, 3)
  sigma: np.ndarray   # float (H, W), grey levels


@dataclasses.dataclass
class ImageView:
  name: str
  hr: np.ndarray       # uint8 (H, W, 3)
  bicubic: np.ndarray  # uint8 (H, W, 3)
  models: list[ModelView]


def hardest_crop(hr: np.ndarray, bicubic: np.ndarray, size: int
                 ) -> tuple[int, int, int]:
  """(top, left, size) of the size x size window where bicubic errs most
  (sum of squared error, via an integral image): where SR is hard."""
  h, w = hr.shape[:2]
  size = max(8, min(size, h, w))
  err = ((hr.astype(np.float64) - bicubic.astype(np.float64)) ** 2).sum(-1)
  integral = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
  sums = (integral[size:, size:] - integral[:-size, size:] -
          integral[size:, :-size] + integral[:-size, :-size])
  top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
  return int(top), int(left), size


def _font(size: int = 14):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1: fixed-size bitmap font.
    return ImageFont.load_default()


def comparison_figure(views: Sequence[ImageView], out_path, *,
                      crop: int = 96, zoom: int = 2) -> pathlib.Path:
  """Writes a Fig. 3-style grid: one row per image, columns HR (with the
  crop marked on a thumbnail), bicubic, then each model's mean and sigma.

  The crop is the ``crop`` px HR window where bicubic errs most; crops are
  enlarged ``zoom`` x (nearest neighbour, to show pixels). Within a row all
  sigma maps share one colour scale (0 to the largest 99th percentile of the
  row), so brighter means more uncertain across models; the scale is
  printed under the row.
  """
  if not views:
    raise ValueError('no images to draw')
  font, pad, label_h = _font(14), 6, 22
  tiles_per_row = 2 + 2 * max(len(v.models) for v in views) + 1
  rows = []
  for v in views:
    top, left, size = hardest_crop(v.hr, v.bicubic, crop)
    cut = lambda x: x[top:top + size, left:left + size]
    cell = size * zoom
    big = lambda x: Image.fromarray(np.asarray(cut(x), np.uint8)).resize(
        (cell, cell), Image.NEAREST)
    vmax = max(float(np.percentile(m.sigma, 99)) for m in v.models) if (
        v.models) else 1.0
    # Thumbnail of the whole HR image with the crop outlined.
    thumb = Image.fromarray(v.hr)
    ratio = cell / max(thumb.size)
    thumb = thumb.resize((max(1, round(thumb.width * ratio)),
                          max(1, round(thumb.height * ratio))),
                         Image.BILINEAR)
    draw = ImageDraw.Draw(thumb)
    draw.rectangle([left * ratio, top * ratio, (left + size) * ratio,
                    (top + size) * ratio], outline=(255, 0, 0), width=2)
    panels = [(v.name, thumb), ('HR', big(v.hr)), ('Bicubic', big(v.bicubic))]
    for m in v.models:
      panels.append((f'{m.name} mean', big(m.sr)))
      panels.append((f'{m.name} sigma',
                     big(visualize.colormap(m.sigma, vmax=vmax))))
    row = Image.new('RGB', (tiles_per_row * (cell + pad) + pad,
                            cell + 2 * label_h + pad), 'white')
    d = ImageDraw.Draw(row)
    for i, (label, img) in enumerate(panels):
      x = pad + i * (cell + pad)
      d.text((x, 3), label, fill='black', font=font)
      row.paste(img, (x, label_h))
    d.text((pad, label_h + cell + 3),
           f'crop {size}px at ({left}, {top}); sigma colour scale 0 (dark) '
           f'to {vmax:.1f} grey levels (bright)', fill='black', font=font)
    rows.append(row)
  width = max(r.width for r in rows)
  figure = Image.new('RGB', (width, sum(r.height for r in rows)), 'white')
  y = 0
  for r in rows:
    figure.paste(r, (0, y))
    y += r.height
  out_path = pathlib.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  figure.save(out_path)
  return out_path


def _pyplot():
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError("plots need matplotlib: pip install -e '.[plots]'") from e
  return plt


def reliability_diagram(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        out_path, *, title: str = '') -> pathlib.Path:
  """Observed vs expected coverage of central intervals, one line per model
  (``curves[name] = (expected, observed)``, both in [0, 1]); the diagonal
  is perfect calibration, below it over-confident."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
  ax.plot([0, 1], [0, 1], color='0.6', linestyle='--', label='calibrated')
  for name, (expected, observed) in curves.items():
    ax.plot(expected, observed, label=name)
  ax.set_xlabel('expected coverage of central interval')
  ax.set_ylabel('observed coverage')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.set_title(title or 'Reliability diagram')
  ax.legend(loc='upper left', fontsize=8)
  return _save(fig, plt, out_path)


def sparsification_plot(curves: Mapping[str, uncertainty.Sparsification],
                        out_path, *, title: str = '') -> pathlib.Path:
  """RMSE of the pixels kept after removing the most uncertain fraction,
  normalised to 1 at fraction 0, per model (``curves[name]``: its
  ``Sparsification``; a random removal order's expected curve once). The
  gap to the model's own oracle is its AUSE."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
  for i, (name, c) in enumerate(curves.items()):
    line, = ax.plot(c.fractions, c.model, label=f'{name}')
    ax.plot(c.fractions, c.oracle, color=line.get_color(),
            linestyle=':', label=f'{name} oracle')
    if i == 0:
      ax.plot(c.fractions, c.random, color='0.6', linestyle='--',
              label='random')
  ax.set_xlabel('fraction of pixels removed (most uncertain first)')
  ax.set_ylabel('RMSE of the rest (normalised)')
  ax.set_xlim(0, 1)
  ax.set_ylim(bottom=0)
  ax.set_title(title or 'Sparsification')
  ax.legend(fontsize=8)
  return _save(fig, plt, out_path)


def _save(fig, plt, out_path) -> pathlib.Path:
  out_path = pathlib.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.tight_layout()
  fig.savefig(out_path)
  plt.close(fig)
  return out_path


# --------------------------------------------------- evaluation results --

def folder_plots(results: Mapping[str, folders_lib.FolderResults],
                 folder: str, directory) -> list[tuple[str, pathlib.Path]]:
  """A reliability diagram and a sparsification plot (Y channel) of one
  folder with one line per model (``results[model]``: its results; models
  without uncertainty are left out), of the folder's pooled pixels or
  averaged over its images, as it was measured. Returns [(title, path)];
  nothing when no model predicts uncertainty."""
  curves = {n: r.curves for n, r in results.items() if r.curves is not None}
  if not curves:
    return []
  directory = pathlib.Path(directory)
  stem = folder.replace('/', '_')
  return [
      (f'Reliability diagram, {folder} (Y)', reliability_diagram(
          {n: (c.calibration.expected, c.calibration.observed)
           for n, c in curves.items()},
          directory / f'reliability_{stem}.png', title=f'{folder}, Y')),
      (f'Sparsification, {folder} (Y)', sparsification_plot(
          {n: c.sparsification for n, c in curves.items()},
          directory / f'sparsification_{stem}.png', title=f'{folder}, Y'))]


def comparison_views(predictors: Mapping[str, object],
                     paths: Sequence[pathlib.Path], *, scale: int,
                     tile: int) -> list[ImageView]:
  """HR, bicubic and every model's mean and sigma for each HR file (the
  evaluation protocol's LR), ready for ``comparison_figure``."""
  views = []
  for path in paths:
    hr = pixels.crop_to_scale(data_lib.load_image(path), scale)
    lr = pixels.make_lr(hr, scale)
    models = []
    for name, predictor in predictors.items():
      mean, log_var = predictor(lr / 255.0, tile=tile)
      models.append(ModelView(name, pixels.mean_to_uint8(mean),
                              pixels.sigma_grey(log_var)))
    views.append(ImageView(path.name, hr, pixels.upscale_bicubic(lr, scale),
                           models))
  return views
