"""Pictures without matplotlib: colour-mapped uncertainty maps with a legend,
and the one PNG writer (``save_png``).

Maps take sigma in grey levels (``pixels.sigma_grey``), (H, W) >= 0, and
give uint8 RGB (H, W, 3).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, PngImagePlugin

PNG_COMPRESS_LEVEL = 3   # zlib level of every PNG written (Pillow: 6).

# Anchor colours of matplotlib's 'inferno' at 0, 1/8, ..., 1 (dark = certain,
# bright = uncertain), linearly interpolated.
_INFERNO = np.array([
    [0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
    [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]
], np.float64)


def colormap(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
  """Maps a (H, W) array >= 0 to uint8 RGB; ``vmax`` defaults to the 99th
  percentile so a few outliers do not wash the map out."""
  values = np.asarray(values, np.float64)
  if vmax is None:
    vmax = float(np.percentile(values, 99)) if values.size else 1.0
  t = np.clip(values / max(vmax, 1e-12), 0.0, 1.0) * (len(_INFERNO) - 1)
  lo = np.floor(t).astype(int)
  hi = np.minimum(lo + 1, len(_INFERNO) - 1)
  frac = (t - lo)[..., None]
  rgb = _INFERNO[lo] * (1 - frac) + _INFERNO[hi] * frac
  return np.round(rgb).astype(np.uint8)


def save_png(path, img: np.ndarray, mode: str | None = None,
             text: dict[str, str] | None = None) -> None:
  """Writes uint8 (H, W) or (H, W, 3) ``img`` as a PNG (``mode`` as PIL's,
  e.g. 'L' or 'RGB'; default from the shape), with optional ``text`` chunks.
  The one place gramjax writes PNGs, at zlib level 3: about 2x faster than
  Pillow's default 6 on our maps."""
  pnginfo = None
  if text:
    pnginfo = PngImagePlugin.PngInfo()
    for key, value in text.items():
      pnginfo.add_text(key, value)
  Image.fromarray(np.asarray(img, np.uint8), mode).save(
      path, format='PNG', compress_level=PNG_COMPRESS_LEVEL, pnginfo=pnginfo)


# ------------------------------------------------------- colour-bar legend --

SIGMA_LABEL = 'sigma (grey levels)'

_BG = (0, 0, 0, 180)           # Semi-opaque black behind the legend.
_FG = (255, 255, 255, 255)     # Text, ticks and the bar's outline.
_BASE_FONT_PX = 10             # Pillow's default font size.


def colormap_rows(values: np.ndarray, vmax: float,
                  rows: int = 256) -> np.ndarray:
  """``colormap(values, vmax)`` computed ``rows`` rows at a time: the same
  pixels, with float64 temporaries of a strip instead of the whole image."""
  values = np.asarray(values)
  out = np.empty(values.shape + (3,), np.uint8)
  for r in range(0, values.shape[0], rows):
    out[r:r + rows] = colormap(values[r:r + rows], vmax)
  return out


def robust_vmax(values: np.ndarray, percentile: float = 99.0) -> float:
  """The colour scale's top: the ``percentile`` of the finite values, or
  the largest finite value / 1.0 where that is not positive."""
  values = np.asarray(values)
  finite = values[np.isfinite(values)] if not np.isfinite(values).all() \
      else values
  if not finite.size:
    return 1.0
  vmax = float(np.percentile(finite, percentile))
  if not vmax > 0:
    vmax = float(finite.max())
  return vmax if vmax > 0 else 1.0


def nice_ticks(vmax: float, max_ticks: int = 5) -> list[float]:
  """Round tick values 0, step, 2 step, ... <= vmax: the finest step of 1, 2
  or 5 x 10^k that gives at most ``max_ticks`` ticks."""
  if not vmax > 0 or not np.isfinite(vmax):
    return [0.0]
  mag = 10.0 ** np.floor(np.log10(vmax / max_ticks))
  for step in (m * mag for m in (1, 2, 5, 10, 20, 50)):
    n = int(np.floor(vmax / step * (1 + 1e-9)))
    if n + 1 <= max_ticks:
      break
  return [float(round(i * step, 10)) for i in range(n + 1)]


def _tick_label(t: float) -> str:
  return f'{t:g}'


def _font(size_px: int):
  """Pillow's built-in font at ``size_px`` (None: only the fixed-size bitmap
  font is available, i.e. Pillow without FreeType)."""
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  try:
    return ImageFont.load_default(size=size_px)
  except (ImportError, OSError, TypeError, AttributeError):
    return None


def _render_legend(vmax: float, label: str, k: int) -> Image.Image:
  """The legend as an RGBA image at ``k`` times the base size: ``label``
  above a horizontal colour bar from 0 to ``vmax`` with round ticks."""
  from PIL import ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  font = _font(_BASE_FONT_PX * k)
  upscale = 1
  if font is None:                  # Bitmap font: draw at k=1, then enlarge.
    font, upscale, k = ImageFont.load_default(), k, 1
  probe = ImageDraw.Draw(Image.new('RGBA', (1, 1)))

  def size(text):
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0, x0, y0

  ticks = nice_ticks(vmax)
  labels = [_tick_label(t) for t in ticks]
  pad, bar_w, bar_h, tick_len = 4 * k, 120 * k, 10 * k, 3 * k
  title_w, title_h, tx0, ty0 = size(label)
  lab_h = max(size(l)[1] + size(l)[3] for l in labels + ['0'])
  half = max(size(l)[0] for l in labels) // 2 + 1
  width = max(title_w, bar_w + 2 * half) + 2 * pad
  height = pad + title_h + pad + bar_h + tick_len + k + lab_h + pad
  img = Image.new('RGBA', (width, height), _BG)
  draw = ImageDraw.Draw(img)
  draw.text((pad - tx0, pad - ty0), label, font=font, fill=_FG)
  bx = (width - bar_w) // 2
  by = pad + title_h + pad
  ramp = colormap(np.linspace(0.0, vmax, bar_w)[None, :], vmax)
  bar = np.repeat(ramp, bar_h, axis=0)
  img.paste(Image.fromarray(bar, 'RGB').convert('RGBA'), (bx, by))
  draw.rectangle((bx - 1, by - 1, bx + bar_w, by + bar_h), outline=_FG)
  for t, text in zip(ticks, labels):
    x = bx + int(round(t / vmax * (bar_w - 1))) if vmax > 0 else bx
    draw.line((x, by + bar_h, x, by + bar_h + tick_len - 1), fill=_FG,
              width=max(1, k // 2))
    w, _, x0, y0 = size(text)
    draw.text((x - w // 2 - x0, by + bar_h + tick_len + k - y0), text,
              font=font, fill=_FG)
  if upscale > 1:
    img = img.resize((width * upscale, height * upscale), Image.NEAREST)
  return img


def legend_scale(height: int, width: int) -> int:
  """Integer size factor of the legend: about a fifth of the shorter side
  of the map wide (1 up to ~700 px)."""
  return max(1, int(min(height, width) * 0.2 // 140))


def legend_box(shape, vmax: float, label: str = SIGMA_LABEL
               ) -> tuple[int, int, int, int]:
  """``(top, left, bottom, right)`` of the legend in the image
  ``add_colorbar`` makes of a map of ``shape`` (H, W, ...): in the strip
  below the map, right-aligned."""
  h, w = shape[:2]
  k = legend_scale(h, w)
  lw, lh = _render_legend(vmax, label, k).size
  margin = 4 * k
  right = max(w, lw + 2 * margin) - margin
  return h + margin, right - lw, h + margin + lh, right


def add_colorbar(rgb: np.ndarray, vmax: float,
                 label: str = SIGMA_LABEL) -> np.ndarray:
  """A colour-mapped (H, W, 3) uint8 map with its legend (``label`` and a
  colour bar from 0 to ``vmax`` with tick labels) in a black strip added
  below it, never over it: the map's pixels are the top H rows, unchanged
  (a map narrower than the legend is padded with black on the right)."""
  rgb = np.asarray(rgb, np.uint8)
  h, w = rgb.shape[:2]
  top, left, bottom, right = legend_box(rgb.shape, vmax, label)
  margin = top - h
  out = np.zeros((bottom + margin, right + margin, 3), np.uint8)
  out[:h, :w] = rgb
  legend = _render_legend(vmax, label, legend_scale(h, w))
  region = Image.fromarray(out[top:bottom, left:right]).convert('RGBA')
  region = Image.alpha_composite(region, legend).convert('RGB')
  out[top:bottom, left:right] = np.asarray(region)
  return out
