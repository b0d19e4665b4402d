"""PSNR/SSIM (and predicted uncertainty) on benchmark folders at full size.

  python -m gramjax.evaluate --method=bicubic \\
      --data=../shared/data/Set5,../shared/data/Set14 --scale=4
  python -m gramjax.evaluate --workdir=runs/gram [--step=N] \\
      --data=data/Set5,data/Set14 --json=runs/gram/eval.json

Per image (the community protocol, see ``gramjax.metrics``):
  * HR: the file decoded to uint8 RGB, cropped to a multiple of the scale;
  * LR: MATLAB bicubic ``imresize(hr / 255, 1 / scale)``, rounded to uint8;
  * bicubic baseline: ``imresize(lr, scale)`` rounded to uint8;
  * model: the predicted mean, ``round(clip((mean + 1) * 127.5, 0, 255))``,
    run tiled (``--tile`` LR pixels) so memory stays bounded;
  * PSNR/SSIM on one channel under ``--convention`` (``standard``: the
    paper's Table I; ``official_code``: the official GRAM code's). A
    greyscale file is measured on its grey values.
Folder numbers are means over its images.

``--json`` writes ``{"<folder name>": {"psnr": float, "ssim": float,
"images": int, "convention": str}, ...}`` (folder name = the folder's
basename; ``parent/basename`` where two basenames clash). For a
``--workdir`` each entry also has ``"step"`` (the checkpoint) and the
uncertainty summary, each a mean over images of a per-image figure on the
same shaved region as PSNR, in grey levels ([0, 255] units):
``sigma_mean_grey`` / ``sigma_median_grey`` (mean / median of the
predicted per-pixel sigma, root of the channel-mean variance),
``rmse_grey`` (RMSE of the unrounded mean, RGB) and ``nll_grey`` (Gaussian
NLL per pixel and channel of the HR image under the prediction). A model
trained with the plain MSE (``config.loss.name == 'mse'``, SRResNet*) has
an untrained log-variance head: its entries carry no uncertainty keys.

Uncertainty quality (``entry["uncertainty"]["y"]`` and ``["rgb"]``, means
over images of ``gramjax.uncertainty.summarize``): Gaussian NLL of the HR
values under N(mu, sigma^2) in nats per pixel (grey-level units), AUSE and
AURG of the RMSE sparsification curves (Ilg et al. 2018), AUCE and the
coverage of the central 50/80/90/95 % intervals (Gustafsson et al. 2020),
the Spearman rank correlation of sigma and |error|, RMSE and mean sigma in
grey levels. On Y the luma variance is derived from the channel variances
assuming independent channel errors. ``--figures=DIR`` also draws each
folder's reliability diagram and sparsification plot.

Errors (missing folder, folder without images, workdir without checkpoints,
conflicting flags, wrong scale) print one line naming the flag or path and
exit with status 2 (``--verbose``: traceback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from gramjax import cli
from gramjax import data as data_lib
from gramjax import imresize
from gramjax import metrics
from gramjax import progress
from gramjax import uncertainty
from gramjax.errors import UserError

METHODS = ('bicubic',)
QUALITY_UNITS = ('grey levels ([0, 255]); nll in nats per pixel of that '
                 'channel; ause, aurg, auce and coverage dimensionless')


# ------------------------------------------------------------ one image --

def crop_to_scale(hr: np.ndarray, scale: int) -> np.ndarray:
  """Crops (H, W, C) to the largest multiple of ``scale`` (top-left kept)."""
  h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
  if not h or not w:
    raise ValueError(f'image {hr.shape[:2]} is smaller than the scale '
                     f'{scale}')
  return hr[:h, :w]


def to_uint8(x: np.ndarray) -> np.ndarray:
  """Rounds [0, 255] floats to uint8 levels (clipped)."""
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
  """uint8 HR (H, W, 3) -> uint8 LR (H/s, W/s, 3) by MATLAB bicubic."""
  return to_uint8(imresize.imresize(hr / 255.0, 1.0 / scale) * 255.0)


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
  """uint8 LR -> uint8 bicubic upscaling by MATLAB imresize."""
  return to_uint8(imresize.imresize(lr / 255.0, scale) * 255.0)


def mean_to_uint8(mean: np.ndarray) -> np.ndarray:
  """Predicted mean in [-1, 1] -> uint8 image."""
  return to_uint8((np.asarray(mean, np.float64) + 1.0) * 127.5)


def uncertainty_stats(mean: np.ndarray, log_var: np.ndarray,
                      hr: np.ndarray, shave: int
                      ) -> tuple[dict[str, float], dict[str, dict], dict]:
  """Per-image uncertainty figures on the region left after shaving
  ``shave`` px, in grey levels ([0, 255] units).

  Returns ``(summary, quality, curves)``: ``summary`` the sigma/RMSE/NLL
  keys of the module doc; ``quality[channel]`` the
  ``gramjax.uncertainty.summarize`` figures for ``'y'`` (BT.601 luma, its
  variance from the channel variances assuming independent channel errors)
  and ``'rgb'`` (every channel of every pixel); ``curves[channel]`` the
  sparsification and calibration curves behind them.
  """
  cut = lambda x: x[shave:x.shape[0] - shave, shave:x.shape[1] - shave]
  mean = cut(np.asarray(mean, np.float64))
  log_var = cut(np.asarray(log_var, np.float64))
  hr = cut(np.asarray(hr, np.float64))
  mu = (mean + 1.0) * 127.5
  var = np.exp(log_var) * 127.5**2                 # Per channel, grey^2.
  sigma = np.sqrt(var.mean(axis=-1))               # Per pixel.
  err2 = (hr - mu) ** 2
  nll = 0.5 * (np.log(2 * math.pi * var) + err2 / var)
  summary = {'sigma_mean_grey': float(sigma.mean()),
             'sigma_median_grey': float(np.median(sigma)),
             'rmse_grey': float(np.sqrt(err2.mean())),
             'nll_grey': float(nll.mean())}
  mu_y, var_y = uncertainty.y_channel(mu, var)
  pairs = {'y': (metrics.rgb_to_y(hr) - mu_y, np.sqrt(var_y)),
           'rgb': (hr - mu, np.sqrt(var))}
  quality, curves = {}, {}
  for channel, (err, sig) in pairs.items():
    quality[channel] = uncertainty.summarize(err, sig)
    curves[channel] = {
        'sparsification': uncertainty.sparsification_curves(err, sig),
        'calibration': uncertainty.calibration_curve(err, sig)}
  return summary, quality, curves


def predicts_uncertainty(predictor) -> bool:
  """False for models trained with the plain MSE (untrained variance head)."""
  config = getattr(predictor, 'config', None)
  return config is None or config.loss.name != 'mse'


@dataclasses.dataclass
class ImageResult:
  name: str
  psnr: float
  ssim: float
  grey: bool
  uncertainty: dict[str, float] = dataclasses.field(default_factory=dict)
  quality: dict[str, dict[str, float]] = dataclasses.field(
      default_factory=dict)
  curves: dict[str, dict] = dataclasses.field(default_factory=dict, repr=False)


def evaluate_image(path: str | os.PathLike, *, scale: int,
                   convention: str = 'standard', predictor=None,
                   tile: int = 128) -> ImageResult:
  """Measures one HR file: bicubic when ``predictor`` is None, else the
  model's mean (and its uncertainty summary)."""
  path = pathlib.Path(path)
  conv = metrics.get_convention(convention)
  hr = crop_to_scale(data_lib.load_image(path), scale)
  shave = conv.shave_for(scale)
  if min(hr.shape[:2]) - 2 * shave < metrics.SSIM_WINDOWS[
      conv.ssim_window].size:
    raise UserError(f'{path}: image {hr.shape[1]}x{hr.shape[0]} is too '
                    f'small to measure with a {shave} px shave')
  lr = make_lr(hr, scale)
  extra, quality, curves = {}, {}, {}
  if predictor is None:
    sr = upscale_bicubic(lr, scale)
  else:
    mean, log_var = predictor(lr / 255.0, tile=tile)
    sr = mean_to_uint8(mean)
    if predicts_uncertainty(predictor):
      extra, quality, curves = uncertainty_stats(mean, log_var, hr, shave)
  grey = metrics.is_greyscale_file(path)
  psnr, ssim = metrics.measure(sr, hr, scale=scale, convention=convention,
                               grey=grey)
  return ImageResult(path.name, psnr, ssim, grey, extra, quality, curves)


# -------------------------------------------------------------- folders --

@dataclasses.dataclass
class Folder:
  name: str                       # Key in the JSON and the tables.
  path: pathlib.Path
  images: list[pathlib.Path]


def resolve_folders(spec: str, key: str = '--data') -> list[Folder]:
  """``DIR[,DIR...]`` -> folders with their images; ``UserError`` naming
  the bad path. Names are basenames, ``parent/basename`` where they clash."""
  parts = [p.strip() for p in (spec or '').split(',') if p.strip()]
  if not parts:
    raise UserError(f'{key} is required: one or more image folders, '
                    'comma-separated')
  folders = []
  for part in parts:
    path = pathlib.Path(os.path.expanduser(part))
    if not path.exists():
      raise UserError(f'{key}: folder {path} does not exist')
    if not path.is_dir():
      raise UserError(f'{key}: {path} is not a folder (give folders of HR '
                      'images)')
    images = data_lib.resolve_images(str(path), key=key, held_out=True)
    folders.append(Folder(path.name or str(path), path, images))
  names = [f.name for f in folders]
  for f in folders:
    if names.count(f.name) > 1:
      parent = pathlib.Path(os.path.abspath(f.path)).parent.name
      f.name = f'{parent}/{f.path.name}'
  seen = {}
  for f in folders:
    if f.name in seen:
      raise UserError(f'{key}: {seen[f.name]} and {f.path} would both be '
                      f'reported as {f.name!r} (listed twice?)')
    seen[f.name] = f.path
  return folders


def summarize(results: Sequence[ImageResult], convention: str,
              step: int | None = None) -> dict[str, Any]:
  """A folder's JSON entry: means over its images."""
  entry = {'psnr': float(np.mean([r.psnr for r in results])),
           'ssim': float(np.mean([r.ssim for r in results])),
           'images': len(results),
           'convention': convention}
  if step is not None:
    entry['step'] = int(step)
  for k in (results[0].uncertainty if results else {}):
    entry[k] = float(np.mean([r.uncertainty[k] for r in results]))
  if results and results[0].quality:
    entry['uncertainty'] = {'units': QUALITY_UNITS}
    for channel in results[0].quality:
      entry['uncertainty'][channel] = {
          k: float(np.nanmean([r.quality[channel][k] for r in results]))
          for k in results[0].quality[channel]}
  return entry


def mean_curves(results: Sequence[ImageResult], channel: str = 'y'
                ) -> dict[str, dict[str, np.ndarray]] | None:
  """A folder's sparsification and calibration curves: per-image curves
  averaged over its images (None for bicubic or MSE models)."""
  if not results or not results[0].curves:
    return None
  sp = [r.curves[channel]['sparsification'] for r in results]
  cal = [r.curves[channel]['calibration'] for r in results]
  avg = lambda items, key: np.nanmean([np.asarray(i[key]) for i in items],
                                      axis=0)
  return {'sparsification': {k: avg(sp, k) for k in
                             ('fractions', 'model', 'oracle', 'random')},
          'calibration': {'expected': avg(cal, 'expected'),
                          'observed': avg(cal, 'observed')}}


def evaluate_folder(folder: Folder, *, scale: int, convention: str,
                    predictor=None, tile: int = 128, label: str = '',
                    quiet: bool = False
                    ) -> tuple[dict[str, Any], list[ImageResult]]:
  """Evaluates every image of ``folder``; one progress line per image (with
  rate and ETA) on stderr unless ``quiet``."""
  results, start = [], time.time()
  n = len(folder.images)
  for i, path in enumerate(folder.images, 1):
    r = evaluate_image(path, scale=scale, convention=convention,
                       predictor=predictor, tile=tile)
    results.append(r)
    if not quiet:
      per = (time.time() - start) / i
      eta = progress.format_duration(per * (n - i))
      print(f'{label}{folder.name} {i}/{n} {r.name}: {r.psnr:.2f} dB SSIM '
            f'{r.ssim:.4f} ({per:.1f} s/img, ETA {eta})', file=sys.stderr,
            flush=True)
  step = None if predictor is None else getattr(predictor, 'step', None)
  return summarize(results, convention, step), results


def evaluate_folders(folders: Sequence[Folder], *, scale: int,
                     convention: str, predictor=None, tile: int = 128,
                     label: str = '', quiet: bool = False):
  """``{folder name: entry}`` and ``{folder name: [ImageResult]}``."""
  entries, per_image = {}, {}
  for folder in folders:
    entries[folder.name], per_image[folder.name] = evaluate_folder(
        folder, scale=scale, convention=convention, predictor=predictor,
        tile=tile, label=label, quiet=quiet)
  return entries, per_image


# ---------------------------------------------------------------- models --

def load_model(workdir: str, step: int | None = None):
  """``gramjax.inference.load`` (imported lazily: bicubic needs no JAX)."""
  from gramjax import inference  # pylint: disable=g-import-not-at-top
  return inference.load(workdir, step)


def check_scale(model_scale: int, scale: int | None, what: str) -> int:
  """The scale to use: the model's, which ``--scale`` (when given) must
  equal."""
  if scale is not None and scale != model_scale:
    raise UserError(f'--scale={scale} does not match the x{model_scale} '
                    f'model of {what}')
  return model_scale


def check_tile(tile: int) -> int:
  if tile < 0:
    raise UserError(f'--tile={tile}: must be >= 0 (0: no tiling)')
  return tile


def check_convention(name: str) -> str:
  if name not in metrics.CONVENTIONS:
    raise UserError(f'--convention={name}: use one of '
                    f'{", ".join(metrics.CONVENTIONS)}')
  return name


def write_json(path: str | os.PathLike, obj, key: str = '--json') -> None:
  path = pathlib.Path(os.path.expanduser(str(path)))
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + '\n')
  except OSError as e:
    raise UserError(f'{key}={path}: cannot write it ({e})') from e


# ---------------------------------------------------------------- tables --

def _sigma_cell(entry: dict) -> str:
  sigma = entry.get('sigma_mean_grey')
  return f'{"-":>14}' if sigma is None else f'{sigma:>14.2f}'


def format_table(entries: dict[str, dict], *, title: str, caption: str,
                 per_image: dict[str, list[ImageResult]] | None = None
                 ) -> str:
  """A plain-text table: one row per folder (and per image if given)."""
  has_sigma = any('sigma_mean_grey' in e for e in entries.values())
  names = list(entries) + [
      '  ' + r.name for rs in (per_image or {}).values() for r in rs]
  width = max([len('folder')] + [len(n) for n in names]) + 2
  head = f'{"folder":<{width}}{"PSNR (dB)":>10}{"SSIM":>9}{"images":>8}'
  if has_sigma:
    head += f'{"sigma (grey)":>14}'
  lines = [title, caption, head, '-' * len(head)]
  for name, e in entries.items():
    row = f'{name:<{width}}{e["psnr"]:>10.2f}{e["ssim"]:>9.4f}{e["images"]:>8d}'
    if has_sigma:
      row += _sigma_cell(e)
    lines.append(row)
    for r in (per_image or {}).get(name, []):
      row = f'{"  " + r.name:<{width}}{r.psnr:>10.2f}{r.ssim:>9.4f}{"":>8}'
      if has_sigma:
        row += _sigma_cell(r.uncertainty)
      lines.append(row + ('  (grey)' if r.grey else ''))
  quality = {n: e['uncertainty'] for n, e in entries.items()
             if 'uncertainty' in e}
  if quality:
    lines += ['', 'uncertainty quality, Y channel (sigma, RMSE in grey '
              'levels; NLL nats/pixel; coverage of central intervals):',
              format_quality_header(width)]
    lines.append('-' * len(lines[-1]))
    for name, q in quality.items():
      lines.append(format_quality_row(name, q['y'], width))
  return '\n'.join(lines)


QUALITY_COLUMNS = (('NLL', 'nll', '.3f'), ('AUSE', 'ause', '.4f'),
                   ('AUCE', 'auce', '.4f'), ('cov50', 'coverage_50', '.3f'),
                   ('cov90', 'coverage_90', '.3f'),
                   ('cov95', 'coverage_95', '.3f'),
                   ('Spearman', 'spearman', '.3f'),
                   ('sigma', 'mean_sigma', '.2f'), ('RMSE', 'rmse', '.2f'))


def format_quality_header(width: int) -> str:
  return f'{"folder":<{width}}' + ''.join(
      f'{label:>10}' for label, _, _ in QUALITY_COLUMNS)


def format_quality_row(name: str, q: dict, width: int) -> str:
  return f'{name:<{width}}' + ''.join(
      f'{q[key]:>10{fmt}}' for _, key, fmt in QUALITY_COLUMNS)


def write_figures(per_image: dict[str, list[ImageResult]], directory,
                  label: str) -> list[pathlib.Path]:
  """Reliability diagram and sparsification plot (Y channel) per folder."""
  from gramjax import figures  # pylint: disable=g-import-not-at-top
  directory = pathlib.Path(directory)
  written = []
  for folder, results in per_image.items():
    curves = mean_curves(results)
    if curves is None:
      continue
    stem = folder.replace('/', '_')
    written.append(figures.reliability_diagram(
        {label: (curves['calibration']['expected'],
                 curves['calibration']['observed'])},
        directory / f'reliability_{stem}.png', title=f'{folder}, Y'))
    written.append(figures.sparsification_plot(
        {label: curves['sparsification']},
        directory / f'sparsification_{stem}.png', title=f'{folder}, Y'))
  return written


# ------------------------------------------------------------------- CLI --

def define_common_flags() -> None:
  """Flags shared by ``gramjax.evaluate`` and ``gramjax.report``."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('data', None,
                      'HR image folder(s), comma-separated (e.g. '
                      '../shared/data/Set5,../shared/data/Set14).')
  flags.DEFINE_integer('scale', 4, 'Upscaling factor; must match the '
                       "model's (default: the model's for --workdir).")
  flags.DEFINE_string('convention', 'standard',
                      'How PSNR/SSIM are measured: standard (Y, shave = '
                      'scale, 11x11 Gaussian SSIM; paper Table I) or '
                      'official_code (Y, 10 px shave, 7x7 uniform SSIM).')
  flags.DEFINE_integer('tile', 128, 'LR tile size for the model (0: whole '
                       'image at once).')
  flags.DEFINE_bool('verbose', False, 'Show tracebacks and library logs.')


def run_cli(body: Callable[[], None]) -> None:
  """Runs ``body`` with the CLI conventions of ``gramjax.cli``."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  cli.run(body, verbose=flags.FLAGS.verbose)


def scale_flag() -> int | None:
  """``--scale`` if given on the command line, else None."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  return flags.FLAGS.scale if flags.FLAGS['scale'].present else None


def _evaluate_main() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if f.method and f.workdir:
    raise UserError(f'--method={f.method} and --workdir={f.workdir}: give '
                    'one of them, not both')
  if not f.method and not f.workdir:
    raise UserError('give --method=bicubic or --workdir=DIR (a trained '
                    'model)')
  if f.method and f.method not in METHODS:
    raise UserError(f'--method={f.method}: use one of {", ".join(METHODS)} '
                    '(or --workdir=DIR for a trained model)')
  if f.step is not None and not f.workdir:
    raise UserError(f'--step={f.step} needs --workdir')
  convention = check_convention(f.convention)
  tile = check_tile(f.tile)
  folders = resolve_folders(f.data)
  scale = scale_flag()
  predictor = None
  if f.workdir:
    predictor = load_model(f.workdir, f.step)
    scale = check_scale(predictor.scale, scale, f'--workdir={f.workdir}')
    title = f'{f.workdir} (step {predictor.step}), x{scale}'
  else:
    scale = f.scale if scale is None else scale
    if scale < 2:
      raise UserError(f'--scale={scale}: must be >= 2')
    title = f'bicubic, x{scale}'
  entries, per_image = evaluate_folders(
      folders, scale=scale, convention=convention, predictor=predictor,
      tile=tile)
  caption = metrics.get_convention(convention).describe(scale)
  print(format_table(entries, title=title, caption=caption,
                     per_image=per_image if f.per_image else None))
  if f.json:
    write_json(f.json, entries)
  if f.figures:
    if predictor is None or not predicts_uncertainty(predictor):
      raise UserError('--figures needs --workdir with a model that predicts '
                      'uncertainty')
    label = pathlib.Path(f.workdir).name or f.workdir
    for path in write_figures(per_image, f.figures, label=label):
      print(f'wrote {path}', file=sys.stderr)


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  run_cli(_evaluate_main)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  define_common_flags()
  flags.DEFINE_string('method', None, 'Baseline to evaluate: bicubic.')
  flags.DEFINE_string('workdir', None, 'Training workdir to evaluate.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_string('json', None, 'Write the folder results here.')
  flags.DEFINE_bool('per_image', False, 'Also print one row per image.')
  flags.DEFINE_string('figures', None, 'Write a reliability diagram and a '
                      'sparsification plot per folder here (needs '
                      "matplotlib: pip install -e '.[plots]').")


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
