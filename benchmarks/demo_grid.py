"""The demo's pictures before and after ICNR and the shuffle blur (issue 13).

Reads the samples of two trained demo workdirs, prints each map's grid
measure (``tests/test_demo.py``: power at the pixel shuffles' periods over
the neighbouring frequencies; about 1 without a grid, the tests' bound 10)
and draws a crop of each map, enlarged, into one PNG for the docs:

  python -m gramjax.main --config=configs/demo.py --workdir=/tmp/before \\
      --config.model.icnr=False --config.model.shuffle_blur=False \\
      --config.ema_decay=0.0 --config.total_steps=1200 \\
      '--config.optimizer.lr_boundaries=(900,)'
  python -m gramjax.main --config=configs/demo.py --workdir=/tmp/after
  python benchmarks/demo_grid.py /tmp/before /tmp/after \\
      docs/images/demo_grid.png

(The first command is the demo as it was before: independent sub-kernels,
no blur, no EMA, 1200 steps.) Needs matplotlib (the test extra).
"""

import json
import pathlib
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from tests.test_demo import grid_ratios  # noqa: E402

MAPS = ('mean', 'uncertainty')
CROP = 64            # HR pixels of the bottom-right corner, shown 4x.


def main(before: str, after: str, out: str) -> None:
  runs = {'before (no ICNR, no blur)': pathlib.Path(before),
          'after (ICNR, shuffle blur, EMA)': pathlib.Path(after)}
  fig, axes = plt.subplots(2, 2, figsize=(7, 7.4))
  for row, (label, workdir) in enumerate(runs.items()):
    samples = workdir / 'samples'
    (result,) = json.loads((samples / 'samples.json').read_text())
    print(f'{label}: PSNR-Y {result["psnr_y"]:.2f} dB '
          f'(bicubic {result["psnr_y_bicubic"]:.2f})')
    for col, kind in enumerate(MAPS):
      img = np.asarray(Image.open(samples / f'chelsea_{kind}.png'))
      ratios = grid_ratios(img)
      print(f'  chelsea_{kind}.png grid measure: lines '
            f'{ratios["lines"]:.1f}, power {ratios["power"]:.1f}')
      ax = axes[row, col]
      ax.imshow(img[-CROP:, -CROP:], interpolation='nearest')
      ax.set_title(f'{label}\n{kind}, grid measure '
                   f'{max(ratios.values()):.0f}', fontsize=9)
      ax.set_axis_off()
  fig.suptitle(f'demo on the held-out chelsea: bottom-right {CROP}x{CROP} '
               'HR pixels, enlarged', fontsize=10)
  fig.tight_layout()
  pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=80)
  print('wrote', out)


if __name__ == '__main__':
  if len(sys.argv) != 4:
    sys.exit(__doc__)
  main(*sys.argv[1:])
