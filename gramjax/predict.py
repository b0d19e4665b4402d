"""Super-resolve your own images, with a per-pixel uncertainty map.

  python -m gramjax.predict --workdir=runs/gram --input=photo.jpg --output=out
  python -m gramjax.predict --checkpoint=runs/gram/checkpoints/300000 \\
      --input=photos/ --output=out [--tile=128] [--sigma_max=8] [--verbose]

Each input image is the LOW-resolution image: it is upscaled x scale (the
model's factor, 4 for the paper's models) as it is, never downscaled first.
For ``<stem>.<ext>`` the command writes into ``--output`` (created if
needed):

``<stem>_sr.png``
    The predicted mean, (H*s, W*s), 8-bit RGB. A greyscale file (PIL mode
    L, LA, I;16, 1, ...) gives a greyscale (mode L) PNG: the luma
    (0.299 R + 0.587 G + 0.114 B) of the mean, rounded.
``<stem>_uncertainty.png``
    The predicted sigma per pixel, colour-mapped (matplotlib's 'inferno':
    black = certain, bright yellow = uncertain), exactly the size of the SR
    image. sigma is in grey levels ([0, 255] units): the root of the mean
    over the three channels of sigma_c^2. The colour scale runs from 0 to
    the image's 99th percentile of sigma (each image its own scale), or to
    ``--sigma_max`` grey levels (give it to compare several images on one
    scale); larger sigmas take the top colour. A legend (the label "sigma
    (grey levels)" above the colour bar with its tick values) is drawn as a
    semi-opaque inset in the bottom-right corner; the scale's top is also
    stored in the PNG's text chunk ``sigma_max_grey``.
``<stem>_log_var.npy``
    The raw prediction: float32 (H*s, W*s, 3), s = log sigma^2 per pixel and
    channel with sigma in the model's [-1, 1] units (so in [0, 1] units
    sigma = exp(s / 2) / 2, and in grey levels sigma = 127.5 * exp(s / 2)).
    ``np.load`` reads it.

    >>> s = np.load('photo_log_var.npy')
    >>> sigma_grey = 127.5 * np.exp(0.5 * s)                 # per channel
    >>> sigma_map = 127.5 * np.sqrt(np.exp(s).mean(-1))      # as in the PNG

Any image Pillow reads works: RGB, RGBA and LA (the alpha channel is
dropped, with a note), greyscale, 16-bit PNG (reduced to 8 bits), palette
images, CMYK JPEG, and JPEGs with an EXIF orientation (applied first, so the
output is upright). Large images are run in ``--tile`` x ``--tile`` LR tiles
with a halo of the model's receptive radius, which gives exactly the untiled
result at bounded memory; outputs are assembled strip by strip and the
``.npy`` is streamed to disk. Images over Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, about 89 Mpixel) are refused.

A folder input runs every file in it (not recursing) whose suffix is an
image suffix (``IMAGE_SUFFIXES``), in name order, with a progress line
(images done, rate, ETA) on stderr; other entries and hidden files are left
alone (one note says how many). A file that cannot be read (missing, empty,
not an image, truncated, corrupt, too large, a folder named like an image)
is reported as one line ``error: PATH: why`` on stderr and skipped; the
others are still processed, and the exit status is then 1. Usage errors (no
model, missing input, an output folder where outputs would overwrite
inputs, bad flags) print one ``error:`` line and exit with status 2.
``--verbose`` adds tracebacks and library logs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import sys
import time
import traceback
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, PngImagePlugin

from gramjax import cli
from gramjax import data as data_lib
from gramjax import visualize
from gramjax.errors import UserError

# What a folder's files are tried as: the training data's suffixes, and GIF.
IMAGE_SUFFIXES = tuple(data_lib.IMAGE_SUFFIXES) + ('.gif', '.jpe', '.jfif',
                                                   '.pbm', '.pnm')
OUTPUT_SUFFIXES = ('_sr.png', '_uncertainty.png', '_log_var.npy')
# PIL modes of single-channel (greyscale) files; the SR is then mode L.
GREY_MODES = frozenset({'1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L',
                        'I;16N', 'F'})
PNG_COMPRESS_LEVEL = 3   # zlib: about 2x faster than Pillow's 6 on our maps.


def _say(msg: str) -> None:
  """One line on stderr, on a line of its own even under a live (terminal)
  progress bar."""
  stream = sys.stderr
  if hasattr(stream, 'isatty') and stream.isatty():
    stream.write('\r\x1b[K')
  stream.write(msg + '\n')
  stream.flush()


# ----------------------------------------------------------------- inputs --

@dataclasses.dataclass
class Job:
  """One input file and the stem of its outputs."""
  path: pathlib.Path
  stem: str

  def outputs(self, outdir: pathlib.Path) -> list[pathlib.Path]:
    return [outdir / (self.stem + s) for s in OUTPUT_SUFFIXES]


def list_inputs(spec: str, say: Callable[[str], None] = _say
                ) -> tuple[list[pathlib.Path], pathlib.Path | None]:
  """``--input`` -> (image paths, the folder or None for a single file).

  A file is tried whatever its suffix; of a folder, every entry with an
  image suffix (files, but also folders or broken links named like images,
  which then fail as one error each). Others are counted in one note.
  """
  if not spec:
    raise UserError('--input is required: an image file or a folder of '
                    'images')
  path = pathlib.Path(os.path.expanduser(spec))
  if not path.exists():
    if path.is_symlink():
      raise UserError(f'--input={path}: a broken symbolic link (its target '
                      f'{os.readlink(path)} does not exist)')
    raise UserError(f'--input={path}: no such file or folder')
  if not path.is_dir():
    return [path], None
  try:
    entries = sorted(path.iterdir(), key=lambda p: p.name)
  except OSError as e:
    raise UserError(f'--input={path}: cannot list the folder ({e})') from e
  images, ignored = [], []
  for p in entries:
    if not p.name.startswith('.') and p.suffix.lower() in IMAGE_SUFFIXES:
      images.append(p)
    else:
      ignored.append(p.name + ('/' if p.is_dir() else ''))
  if ignored:
    shown = ', '.join(ignored[:5]) + (', ...' if len(ignored) > 5 else '')
    say(f'note: {path}: ignored {len(ignored)} entr'
        f'{"y" if len(ignored) == 1 else "ies"} without an image suffix or '
        f'hidden ({shown})')
  if not images:
    raise UserError(f'--input={path}: no images in the folder (suffixes '
                    f'{", ".join(IMAGE_SUFFIXES)})')
  return images, path


def plan_outputs(paths: Sequence[pathlib.Path], outdir: pathlib.Path,
                 say: Callable[[str], None] = _say) -> list[Job]:
  """Output stems, distinct (``a.png`` and ``a.jpg`` become ``a_png`` and
  ``a_jpg``), and a ``UserError`` if an output would overwrite an input."""
  stems = [p.stem for p in paths]
  counts = {}
  for s in stems:
    counts[s.casefold()] = counts.get(s.casefold(), 0) + 1
  jobs = []
  for p, s in zip(paths, stems):
    if counts[s.casefold()] > 1:
      s = f'{s}_{p.suffix.lstrip(".").lower()}'
    jobs.append(Job(p, s))
  renamed = [j for j in jobs if j.stem != j.path.stem]
  if renamed:
    say('note: inputs share a name: writing ' + ', '.join(
        f'{j.path.name} as {j.stem}_*' for j in renamed))
  seen = {}
  for j in jobs:
    key = j.stem.casefold()
    if key in seen:
      raise UserError(f'{seen[key]} and {j.path} would both write '
                      f'{outdir / (j.stem + OUTPUT_SUFFIXES[0])}; rename one')
    seen[key] = j.path
  inputs = {}
  for p in paths:
    try:
      inputs[os.path.realpath(p).casefold()] = p
    except OSError:
      pass
  for j in jobs:
    for out in j.outputs(outdir):
      hit = inputs.get(os.path.realpath(out).casefold())
      if hit is not None:
        raise UserError(f'--output={outdir}: writing {out.name} there would '
                        f'overwrite the input {hit}; choose another --output '
                        'folder')
  return jobs


def prepare_output_dir(spec: str) -> pathlib.Path:
  if not spec:
    raise UserError('--output is required: the folder to write the results '
                    'to (created if needed)')
  return cli.writable_dir(os.path.expanduser(spec), '--output')


@dataclasses.dataclass
class LoadedImage:
  pixels: np.ndarray        # uint8 (H, W, 3), upright (EXIF applied).
  mode: str                 # The file's PIL mode.
  grey: bool
  alpha: bool
  notes: list[str] = dataclasses.field(default_factory=list)


def _check_file(path: pathlib.Path) -> None:
  """Fails with one clear line for paths that are not a readable file."""
  if not os.path.lexists(path):
    raise UserError(f'{path}: file not found')
  if not path.exists():
    raise UserError(f'{path}: a broken symbolic link (its target '
                    f'{os.readlink(path)} does not exist)')
  if path.is_dir():
    raise UserError(f'{path}: is a folder, not an image file')
  if not path.is_file():
    raise UserError(f'{path}: not a regular file')
  try:
    size = path.stat().st_size
    with open(path, 'rb'):
      pass
  except OSError as e:
    raise UserError(f'{path}: cannot read it ({e.strerror or e})') from e
  if size == 0:
    raise UserError(f'{path}: empty file (0 bytes)')


def read_image(path: pathlib.Path) -> LoadedImage:
  """Decodes one input (``data.load_image``: EXIF orientation applied,
  greyscale replicated, alpha dropped, 16-bit reduced to 8) and reports what
  the file was. Raises ``UserError`` naming the file."""
  _check_file(path)
  limit = Image.MAX_IMAGE_PIXELS
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    # Between 1x and 2x the limit Pillow only warns: refuse those too.
    warnings.simplefilter('error', Image.DecompressionBombWarning)
    try:
      with Image.open(path) as im:
        mode, info, (w, h) = im.mode, dict(im.info), im.size
        bands = im.getbands()
    except (Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
      raise UserError(f'{path}: too large, refused as a possible '
                      f'decompression bomb ({e}); the limit is '
                      f'PIL.Image.MAX_IMAGE_PIXELS') from e
    except Image.UnidentifiedImageError as e:
      raise UserError(f'{path}: cannot decode image (not an image format '
                      'Pillow recognises, or a corrupt header)') from e
    except (OSError, ValueError, SyntaxError, EOFError, TypeError,
            IndexError, KeyError, AttributeError) as e:
      raise UserError(f'{path}: cannot decode image ({e or type(e).__name__}'
                      ')') from e
    if w <= 0 or h <= 0:
      raise UserError(f'{path}: image has no pixels ({w}x{h})')
    if limit and w * h > limit:
      raise UserError(f'{path}: {w}x{h} is too large ({w * h / 1e6:.0f} '
                      f'Mpixel; over the {limit / 1e6:.0f} Mpixel limit '
                      'against decompression bombs, PIL.Image.'
                      'MAX_IMAGE_PIXELS)')
    try:
      pixels = data_lib.load_image(path)
    except UserError:
      raise
    except (EOFError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, Image.DecompressionBombWarning) as e:
      raise UserError(f'{path}: cannot decode image ({type(e).__name__}: '
                      f'{e})') from e
  # Pillow's warnings about a file it did decode (e.g. corrupt EXIF data)
  # become notes instead of multi-line warnings.
  notes = list(dict.fromkeys(' '.join(str(w.message).split())
                             for w in caught))
  alpha = ('A' in bands or 'a' in bands or 'transparency' in info)
  return LoadedImage(pixels, mode, mode in GREY_MODES, alpha, notes)


# ------------------------------------------------------------- prediction --

def predict_strips(predictor, lr01: np.ndarray, tile: int,
                   on_tile: Callable[[int], None] | None = None
                   ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
  """Yields ``(row0, row1, mean, log_var)``: the prediction for HR rows
  [row0, row1), top to bottom, each (row1 - row0, W*s, C) float32.

  The same tiles as ``Predictor.__call__`` (identical numbers), one strip of
  tiles at a time so the whole float prediction is never in memory.
  """
  from gramjax import inference  # pylint: disable=g-import-not-at-top
  lr01 = np.asarray(lr01, np.float32)
  h, w, c = lr01.shape
  s = predictor.scale
  if not tile or (h <= tile and w <= tile):
    mean, log_var = predictor.run(lr01)
    if on_tile is not None:
      on_tile(1)
    yield 0, h * s, mean, log_var
    return
  halo = predictor.radius
  cols = list(inference.tile_windows(w, tile, halo))
  for y0, y1, iy0, iy1 in inference.tile_windows(h, tile, halo):
    mean = np.empty(((y1 - y0) * s, w * s, c), np.float32)
    log_var = np.empty_like(mean)
    for x0, x1, ix0, ix1 in cols:
      m, v = predictor.run(lr01[iy0:iy1, ix0:ix1])
      ys = slice((y0 - iy0) * s, (y1 - iy0) * s)
      xs = slice((x0 - ix0) * s, (x1 - ix0) * s)
      mean[:, x0 * s:x1 * s] = m[ys, xs]
      log_var[:, x0 * s:x1 * s] = v[ys, xs]
      if on_tile is not None:
        on_tile(1)
    yield y0 * s, y1 * s, mean, log_var


def count_tiles(predictor, shape, tile: int) -> int:
  h, w = shape[:2]
  if not tile or (h <= tile and w <= tile):
    return 1
  return math.ceil(h / tile) * math.ceil(w / tile)


def _mean_to_uint8(mean: np.ndarray, grey: bool) -> np.ndarray:
  """[-1, 1] mean -> uint8 RGB, or its luma (H, W) for greyscale files."""
  from gramjax import evaluate  # pylint: disable=g-import-not-at-top
  from gramjax import metrics  # pylint: disable=g-import-not-at-top
  if not grey:
    return evaluate.mean_to_uint8(mean)
  rgb = (np.asarray(mean, np.float64) + 1.0) * 127.5
  return evaluate.to_uint8(metrics.rgb_to_grey(rgb))


class _NpyWriter:
  """Writes an .npy file row block by row block (C order), no memmap."""

  def __init__(self, path: pathlib.Path, shape, dtype=np.float32):
    self.f = open(path, 'wb')
    self.dtype = np.dtype(dtype)
    np.lib.format.write_array_header_1_0(self.f, {
        'descr': np.lib.format.dtype_to_descr(self.dtype),
        'fortran_order': False, 'shape': tuple(int(d) for d in shape)})

  def write(self, block: np.ndarray) -> None:
    self.f.write(np.ascontiguousarray(block, self.dtype).data)

  def close(self) -> None:
    self.f.close()


def _save_png(path: pathlib.Path, img: np.ndarray, mode: str | None = None,
              text: dict[str, str] | None = None) -> None:
  pil = Image.fromarray(np.asarray(img, np.uint8), mode)
  pnginfo = None
  if text:
    pnginfo = PngImagePlugin.PngInfo()
    for k, v in text.items():
      pnginfo.add_text(k, v)
  pil.save(path, format='PNG', compress_level=PNG_COMPRESS_LEVEL,
           pnginfo=pnginfo)


@dataclasses.dataclass
class Result:
  path: pathlib.Path
  sr: pathlib.Path
  uncertainty: pathlib.Path
  log_var: pathlib.Path
  lr_size: tuple[int, int]       # (width, height) of the input, upright.
  grey: bool
  sigma_max: float               # Top of the colour scale, grey levels.
  seconds: float


def predict_image(predictor, job: Job, outdir: pathlib.Path, *,
                  tile: int = 128, sigma_max: float | None = None,
                  say: Callable[[str], None] = _say,
                  on_tile: Callable[[int], None] | None = None) -> Result:
  """Super-resolves one file and writes its three outputs (see the module
  doc). Outputs appear only when all three are complete (written under a
  temporary name, then renamed). Raises ``UserError`` naming the file."""
  start = time.time()
  image = read_image(job.path)
  for note in image.notes:
    say(f'note: {job.path}: {note}')
  if image.alpha:
    say(f'note: {job.path}: alpha channel (transparency) dropped; the SR is '
        f'{"greyscale" if image.grey else "RGB"}')
  lr = image.pixels
  h, w, c = lr.shape
  s = predictor.scale
  hr_shape = (h * s, w * s)
  finals = job.outputs(outdir)
  tmps = [p.with_name(f'.{p.name}.partial') for p in finals]
  try:
    sr = np.empty(hr_shape + (() if image.grey else (c,)), np.uint8)
    sigma = np.empty(hr_shape, np.float32)
    npy = _NpyWriter(tmps[2], hr_shape + (c,))
    try:
      lr01 = lr.astype(np.float32) / 255.0
      for r0, r1, mean, log_var in predict_strips(predictor, lr01, tile,
                                                  on_tile):
        sr[r0:r1] = _mean_to_uint8(mean, image.grey)
        sigma[r0:r1] = visualize.sigma_grey_levels(log_var)
        npy.write(log_var)
      del lr01
    finally:
      npy.close()
    _save_png(tmps[0], sr, 'L' if image.grey else 'RGB')
    del sr
    vmax = float(sigma_max) if sigma_max else visualize.robust_vmax(sigma)
    rgb = visualize.add_colorbar(visualize.colormap_rows(sigma, vmax), vmax)
    del sigma
    _save_png(tmps[1], rgb, 'RGB', {'sigma_max_grey': f'{vmax:.6g}',
                                    'sigma_units': 'grey levels [0,255]'})
    del rgb
    for tmp, final in zip(tmps, finals):
      os.replace(tmp, final)
  except OSError as e:
    raise UserError(f'{job.path}: cannot write the outputs to {outdir} '
                    f'({e})') from e
  finally:
    for tmp in tmps:
      try:
        tmp.unlink()
      except OSError:
        pass
  return Result(job.path, finals[0], finals[1], finals[2], (w, h),
                image.grey, vmax, time.time() - start)


def predict_all(predictor, jobs: Sequence[Job], outdir: pathlib.Path, *,
                tile: int = 128, sigma_max: float | None = None,
                verbose: bool = False, show_progress: bool = True,
                say: Callable[[str], None] = _say
                ) -> tuple[list[Result], list[tuple[pathlib.Path, str]]]:
  """Runs every job; returns (results, [(path, error line)]). A failing
  file costs one ``error:`` line, never the others."""
  from gramjax import progress  # pylint: disable=g-import-not-at-top
  results, failures = [], []
  bar = None
  if show_progress and len(jobs) > 1:
    bar = progress.Progress(len(jobs), 'predict', unit='img')
  for job in jobs:
    tile_bar = None
    try:
      if bar is None and show_progress:
        # One image: a progress line over its tiles when there are many.
        n = _tiles_of(predictor, job.path, tile)
        if n > 8:
          tile_bar = progress.Progress(n, job.path.name, unit='tile')
      results.append(predict_image(
          predictor, job, outdir, tile=tile, sigma_max=sigma_max, say=say,
          on_tile=tile_bar.update if tile_bar else None))
    except KeyboardInterrupt:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if isinstance(e, UserError):
        line = f'error: {e}'
      elif isinstance(e, MemoryError):
        line = (f'error: {job.path}: out of memory (try a smaller '
                f'--tile={max(tile // 2, 16)})')
      else:
        line = (f'error: {job.path}: {type(e).__name__}: {e} (--verbose '
                'shows the traceback)')
      line = ' '.join(line.split())   # Strictly one line.
      if verbose:
        traceback.print_exc()
      say(line)
      failures.append((job.path, line))
    finally:
      if tile_bar is not None:
        tile_bar.close()
    if bar is not None:
      bar.update()
  if bar is not None:
    bar.close()
  return results, failures


def _tiles_of(predictor, path: pathlib.Path, tile: int) -> int:
  """Tile count of an image from its header (0 where it cannot be read)."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
          w, h = h, w
  except Exception:  # pylint: disable=broad-except
    return 0
  return count_tiles(predictor, (h, w), tile)


# -------------------------------------------------------------- the model --

def resolve_model(workdir: str | None, checkpoint: str | None,
                  step: int | None) -> tuple[pathlib.Path, int | None]:
  """``--workdir``/``--checkpoint``/``--step`` -> (workdir, step or None).

  ``--checkpoint`` is a step folder ``WORKDIR/checkpoints/STEP`` (the
  workdir and step are read off the path); ``WORKDIR/checkpoints`` or the
  workdir itself also work (latest step, or ``--step``).
  """
  if not workdir and not checkpoint:
    raise UserError('give the model: --workdir=DIR (a training workdir) or '
                    '--checkpoint=DIR/checkpoints/STEP')
  if step is not None and step < 0:
    raise UserError(f'--step={step}: must be >= 0')
  ck_step = None
  if checkpoint:
    ck = pathlib.Path(os.path.expanduser(checkpoint))
    if not ck.exists():
      raise UserError(f'--checkpoint={ck}: no such folder')
    if not ck.is_dir():
      raise UserError(f'--checkpoint={ck}: not a folder (give a checkpoint '
                      'step folder such as WORKDIR/checkpoints/1200)')
    ck = pathlib.Path(os.path.abspath(ck))
    if ck.name.isdigit() and ck.parent.name == 'checkpoints':
      derived, ck_step = ck.parent.parent, int(ck.name)
    elif ck.name == 'checkpoints':
      derived = ck.parent
    elif (ck / 'checkpoints').is_dir():
      derived = ck
    else:
      raise UserError(f'--checkpoint={ck}: not a checkpoint folder (expected '
                      'WORKDIR/checkpoints/STEP)')
    if workdir:
      wd = pathlib.Path(os.path.expanduser(workdir))
      if not wd.is_dir() or not os.path.samefile(wd, derived):
        raise UserError(f'--workdir={wd} and --checkpoint={checkpoint} name '
                        'different models; give one of them')
    if step is not None and ck_step is not None and step != ck_step:
      raise UserError(f'--step={step} and --checkpoint={checkpoint} '
                      f'(step {ck_step}) disagree; give one of them')
    workdir = str(derived)
    step = ck_step if ck_step is not None else step
  wd = pathlib.Path(os.path.expanduser(workdir))
  if not wd.is_dir():
    raise UserError(f'--workdir={wd}: no such folder')
  if not (wd / 'checkpoints').is_dir():
    raise UserError(f'--workdir={wd}: no checkpoints/ folder (train it '
                    'first with python -m gramjax.main)')
  return wd, step


def load_model(workdir: pathlib.Path, step: int | None):
  from gramjax import inference  # pylint: disable=g-import-not-at-top
  return inference.load(workdir, step)


# -------------------------------------------------------------------- CLI --

def _predict_main() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  workdir, step = resolve_model(f.workdir, f.checkpoint, f.step)
  if f.tile < 0:
    raise UserError(f'--tile={f.tile}: must be >= 0 (0: no tiling)')
  if f.sigma_max is not None and not (np.isfinite(f.sigma_max)
                                      and f.sigma_max > 0):
    raise UserError(f'--sigma_max={f.sigma_max}: must be a positive number '
                    '(grey levels)')
  paths, _ = list_inputs(f.input)
  if not f.output:
    raise UserError('--output is required: the folder to write the results '
                    'to (created if needed)')
  outdir = pathlib.Path(os.path.expanduser(f.output))
  if outdir.exists() and not outdir.is_dir():
    raise UserError(f'--output={outdir}: exists and is not a folder')
  jobs = plan_outputs(paths, outdir)
  predictor = load_model(workdir, step)
  outdir = prepare_output_dir(f.output)
  from gramjax import evaluate  # pylint: disable=g-import-not-at-top
  if not evaluate.predicts_uncertainty(predictor):
    _say('note: this model was trained with the plain MSE: its variance head '
         'is untrained, so the uncertainty outputs mean nothing')
  _say(f'model: {workdir} step {predictor.step} (x{predictor.scale}); '
       f'{len(jobs)} image{"s" if len(jobs) != 1 else ""} -> {outdir}')
  start = time.time()
  results, failures = predict_all(predictor, jobs, outdir, tile=f.tile,
                                  sigma_max=f.sigma_max, verbose=f.verbose)
  for r in results:
    w, h = r.lr_size
    print(f'{r.path} ({w}x{h}) -> {r.sr.name} ({w * predictor.scale}x'
          f'{h * predictor.scale}{", grey" if r.grey else ""}), '
          f'{r.uncertainty.name} (0-{r.sigma_max:.3g} grey levels), '
          f'{r.log_var.name}')
  sys.stdout.flush()
  _say(f'done: {len(results)} of {len(jobs)} image'
       f'{"s" if len(jobs) != 1 else ""} in '
       f'{time.time() - start:.1f}s'
       + (f'; {len(failures)} failed (see the error lines above)'
          if failures else ''))
  if failures:
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, but a bad flag is one ``error:`` line, status 2."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e} (--help lists the flags)', file=sys.stderr)
    sys.exit(2)
  if len(rest) > 1:
    print(f'error: unexpected arguments {rest[1:]}: give the image or folder '
          'with --input=PATH', file=sys.stderr)
    sys.exit(2)
  return rest


def main(argv) -> None:
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  cli.run(_predict_main, verbose=flags.FLAGS.verbose)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'Training workdir of the model (its '
                      'latest checkpoint, or --step).')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint step folder, '
                      'WORKDIR/checkpoints/STEP (instead of --workdir).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_string('input', None, 'An image, or a folder of images (each '
                      'the low-resolution input; not downscaled).')
  flags.DEFINE_string('output', None, 'Folder for <stem>_sr.png, '
                      '<stem>_uncertainty.png and <stem>_log_var.npy '
                      '(created if needed).')
  flags.DEFINE_integer('tile', 128, 'LR tile size in pixels (0: the whole '
                       'image at once); the result does not depend on it.')
  flags.DEFINE_float('sigma_max', None, 'Top of the uncertainty colour scale '
                     'in grey levels (default: each image\'s 99th '
                     'percentile); fix it to compare images.')
  flags.DEFINE_bool('verbose', False, 'Show tracebacks and library logs.')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main, flags_parser=parse_flags)
