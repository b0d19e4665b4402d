"""The README's interval picture: one predict output's SR image, sigma map
and interval half-width map side by side, each with its own caption.

  python -m gramjax.evaluate --workdir=workdirs/demo \\
      --calibrate_on=../shared/data/Set14 --calibration_method=crc \\
      --data=../shared/data/Set5
  python -m gramjax.predict --workdir=workdirs/demo \\
      --input=LR_IMAGE --output=/tmp/pred
  python benchmarks/interval_figure.py /tmp/pred STEM docs/images/interval.png

The captions come from the PNGs' own text chunks (``holds``), so the
picture says what each map is.
"""

import pathlib
import sys

import numpy as np
from PIL import Image, ImageDraw

PAD, CAPTION = 8, 30


def panel(path: pathlib.Path, title: str, width: int) -> Image.Image:
  with Image.open(path) as im:
    im = im.convert('RGB')
    holds = im.info.get('holds', '')
  h = round(im.height * width / im.width)
  im = im.resize((width, h), Image.Resampling.LANCZOS)
  out = Image.new('RGB', (width, h + CAPTION), 'white')
  out.paste(im, (0, CAPTION))
  draw = ImageDraw.Draw(out)
  draw.text((2, 2), title, fill='black')
  draw.text((2, 15), holds[:70], fill=(80, 80, 80))
  return out


def main(folder: str, stem: str, out: str, width: int = 300) -> None:
  folder = pathlib.Path(folder)
  panels = [panel(folder / f'{stem}_sr.png', 'SR mean (x4)', width),
            panel(folder / f'{stem}_uncertainty.png', 'sigma', width),
            panel(folder / f'{stem}_interval.png',
                  'interval half-width', width)]
  height = max(p.height for p in panels)
  grid = Image.new('RGB', (len(panels) * (width + PAD) - PAD, height),
                   'white')
  for i, p in enumerate(panels):
    grid.paste(p, (i * (width + PAD), 0))
  grid.save(out, optimize=True)
  print(f'wrote {out} ({grid.width}x{grid.height}); '
        f'mean half-width over the map: see {stem}_interval.npy '
        f'({np.load(folder / f"{stem}_interval.npy").mean():.2f} grey '
        'levels)')


if __name__ == '__main__':
  main(*sys.argv[1:4])
