"""Super-resolving image files on disk, one file at a time.

The library behind ``python -m gramjax.predict`` (whose docstring documents
the outputs): list inputs, plan output names that never overwrite an
input, read a file (one ``UserError`` line naming it when it cannot be
read), run an ``inference.Predictor`` strip by strip and write
``<stem>_sr.png``, ``<stem>_uncertainty.png`` and optionally
``<stem>_log_var.npy``, each renamed into place only once all are complete
(so a file whose outputs all exist is done: ``split_done`` skips it when a
run goes on after an interruption).

    jobs = photos.plan_outputs(photos.list_inputs('in/')[0], out)
    results, failures = photos.predict_all(predictor, jobs, out)
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
from typing import Callable, Sequence

import numpy as np
import tqdm

from gramjax import data
from gramjax.inference import predictor as inference
from gramjax.metrics import quality as metrics
from gramjax.core import pixels
from gramjax.core import progress
from gramjax.core import visualize
from gramjax.core.errors import UserError

# What a folder's files are tried as: the same suffixes as everywhere.
IMAGE_SUFFIXES = data.IMAGE_SUFFIXES
SR_SUFFIX, UNCERTAINTY_SUFFIX, LOG_VAR_SUFFIX = (
    '_sr.png', '_uncertainty.png', '_log_var.npy')
OUTPUT_SUFFIXES = (SR_SUFFIX, UNCERTAINTY_SUFFIX, LOG_VAR_SUFFIX)

Say = Callable[[str], None]


def show(msg: str, stream=None) -> None:
  """Writes one line (default: stderr) through tqdm, which moves a live
  progress bar out of the way so the message gets a line of its own."""
  stream = stream or sys.stderr
  tqdm.tqdm.write(msg, file=stream)
  stream.flush()


# ----------------------------------------------------------------- inputs --

@dataclasses.dataclass
class Job:
  """One input file and the stem of its outputs."""
  path: pathlib.Path
  stem: str

  def outputs(self, outdir: pathlib.Path, log_var: bool = True
              ) -> list[pathlib.Path]:
    """The output paths: SR, uncertainty map and (``log_var``) the .npy."""
    suffixes = OUTPUT_SUFFIXES if log_var else OUTPUT_SUFFIXES[:2]
    return [outdir / (self.stem + s) for s in suffixes]


def list_inputs(spec: str, say: Say = show
                ) -> tuple[list[pathlib.Path], pathlib.Path | None]:
  """An input (a file or a folder) -> (image paths, the folder or None for
  a single file).

  A file is tried whatever its suffix; of a folder, every entry with an
  image suffix (files, but also folders or broken links named like images,
  which then fail as one error each), in name order. Others and hidden
  entries are counted in one note.
  """
  if not spec:
    raise UserError('no input given: an image file or a folder of images')
  path = pathlib.Path(os.path.expanduser(spec))
  if not path.exists():
    if path.is_symlink():
      raise UserError(f'{path}: a broken symbolic link (its target '
                      f'{os.readlink(path)} does not exist)')
    raise UserError(f'{path}: no such file or folder')
  if not path.is_dir():
    return [path], None
  try:
    entries = sorted(path.iterdir(), key=lambda p: p.name)
  except OSError as e:
    raise UserError(f'{path}: cannot list the folder ({e})') from e
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
    raise UserError(f'{path}: no images in the folder (suffixes '
                    f'{", ".join(IMAGE_SUFFIXES)})')
  return images, path


def plan_outputs(paths: Sequence[pathlib.Path], outdir: pathlib.Path,
                 say: Say = show, log_var: bool = True) -> list[Job]:
  """Output stems, distinct (``a.png`` and ``a.jpg`` become ``a_png`` and
  ``a_jpg``), and a ``UserError`` if an output would overwrite an input."""
  counts = {}
  for p in paths:
    counts[p.stem.casefold()] = counts.get(p.stem.casefold(), 0) + 1
  jobs = [Job(p, p.stem if counts[p.stem.casefold()] == 1 else
              f'{p.stem}_{p.suffix.lstrip(".").lower()}') for p in paths]
  renamed = [j for j in jobs if j.stem != j.path.stem]
  if renamed:
    say('note: inputs share a name: writing ' + ', '.join(
        f'{j.path.name} as {j.stem}_*' for j in renamed))
  seen = {}
  for j in jobs:
    key = j.stem.casefold()
    if key in seen:
      raise UserError(f'{seen[key]} and {j.path} would both write '
                      f'{outdir / (j.stem + SR_SUFFIX)}; rename one')
    seen[key] = j.path
  inputs = {os.path.realpath(p).casefold(): p for p in paths}
  for j in jobs:
    for out in j.outputs(outdir, log_var):
      hit = inputs.get(os.path.realpath(out).casefold())
      if hit is not None:
        raise UserError(f'{outdir}: writing {out.name} there would '
                        f'overwrite the input {hit}; choose another output '
                        'folder')
  return jobs


@dataclasses.dataclass
class LoadedImage:
  """A decoded input and what its file was."""
  pixels: np.ndarray        # uint8 (H, W, 3) in [0, 255], upright (EXIF).
  mode: str                 # The file's PIL mode.
  grey: bool                # A greyscale file (``metrics.GREY_MODES``).
  alpha: bool               # It had an alpha channel (dropped).
  notes: list[str] = dataclasses.field(default_factory=list)


def _check_file(path: pathlib.Path) -> None:
  """Fails with one clear line for paths that are not a regular, non-empty
  file (from the folder entry alone: the file itself is not opened)."""
  if not os.path.lexists(path):
    raise UserError(f'{path}: file not found')
  if not path.exists():
    raise UserError(f'{path}: a broken symbolic link (its target '
                    f'{os.readlink(path)} does not exist)')
  if path.is_dir():
    raise UserError(f'{path}: is a folder, not an image file')
  if not path.is_file():
    raise UserError(f'{path}: not a regular file')
  if not os.access(path, os.R_OK):
    raise UserError(f'{path}: cannot read it (permission denied)')
  if path.stat().st_size == 0:
    raise UserError(f'{path}: empty file (0 bytes)')


def read_image(path: pathlib.Path) -> LoadedImage:
  """Decodes one input with ``data.load_image`` (EXIF orientation applied,
  greyscale replicated, alpha dropped, 16-bit reduced to 8, images over the
  decompression-bomb limit refused) and reports what the file was (its
  mode and alpha, from the same opening). Raises ``UserError`` naming the
  file."""
  _check_file(path)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    try:
      decoded = data.decode_image(path)
    except UserError:
      raise
    except (OSError, EOFError, TypeError, IndexError, KeyError,
            AttributeError, MemoryError, ValueError) as e:
      raise UserError(f'{path}: cannot decode image ({type(e).__name__}: '
                      f'{e})') from e
  # Pillow's warnings about a file it did decode (e.g. corrupt EXIF data)
  # become notes instead of multi-line warnings.
  notes = list(dict.fromkeys(' '.join(str(w.message).split())
                             for w in caught))
  return LoadedImage(decoded.rgb, decoded.mode,
                     decoded.mode in metrics.GREY_MODES, decoded.alpha, notes)


# ---------------------------------------------------------------- outputs --

def _open_npy(path: pathlib.Path, shape):
  """An open file holding the header of a float32 C-order .npy of ``shape``:
  write the rows in order after it (streamed, no memmap)."""
  f = open(path, 'wb')
  np.lib.format.write_array_header_1_0(f, {
      'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
      'fortran_order': False, 'shape': tuple(int(d) for d in shape)})
  return f


@dataclasses.dataclass
class Result:
  """What ``predict_image`` wrote for one input."""
  path: pathlib.Path
  sr: pathlib.Path
  uncertainty: pathlib.Path
  log_var: pathlib.Path | None   # None when not written.
  lr_size: tuple[int, int]       # (width, height) of the input, upright.
  sr_size: tuple[int, int]       # (width, height) of the outputs.
  grey: bool
  sigma_max: float               # Top of the colour scale, grey levels.
  seconds: float

  def line(self) -> str:
    """One line for the user: input -> outputs, sizes, the colour scale."""
    (w, h), (sw, sh) = self.lr_size, self.sr_size
    npy = f', {self.log_var.name}' if self.log_var else ''
    return (f'{self.path} ({w}x{h}) -> {self.sr.name} ({sw}x{sh}'
            f'{", grey" if self.grey else ""}), {self.uncertainty.name} '
            f'(0-{self.sigma_max:.3g} grey levels){npy}')


def predict_image(predictor: inference.Predictor, job: Job,
                  outdir: pathlib.Path, *, tile: int = 128,
                  sigma_max: float | None = None, log_var: bool = True,
                  say: Say = show, tile_progress: bool = False,
                  sigma_scale: float = 1.0, colour_bar: bool = True
                  ) -> Result:
  """Super-resolves one file and writes its outputs (module doc; the .npy
  only with ``log_var``; the uncertainty map with its colour bar in a strip
  below it, or without with ``colour_bar=False``). They appear only when
  all are complete (written under a temporary name, then renamed).
  ``sigma_scale`` multiplies every sigma (a recalibration; the .npy holds
  log sigma^2 after it). ``tile_progress``: a progress bar over the tiles
  of an image of more than 8. Raises ``UserError`` naming the file."""
  start = time.time()
  image = read_image(job.path)
  for note in image.notes:
    say(f'note: {job.path}: {note}')
  if image.alpha:
    say(f'note: {job.path}: alpha channel (transparency) dropped; the SR is '
        f'{"greyscale" if image.grey else "RGB"}')
  h, w, _ = image.pixels.shape
  finals = job.outputs(outdir, log_var)
  tmps = [p.with_name(f'.{p.name}.partial') for p in finals]
  n_tiles = inference.count_tiles((h, w), tile)
  bar = progress.Progress(n_tiles, job.path.name, unit='tile',
                          disable=not tile_progress or n_tiles <= 8)
  try:
    sr, sigma = _run(predictor, image, tile, tmps[2] if log_var else None,
                     sigma_scale, bar.update)
    visualize.save_png(tmps[0], sr, 'L' if image.grey else 'RGB')
    del sr
    vmax = float(sigma_max) if sigma_max else visualize.robust_vmax(sigma)
    rgb = visualize.colormap_rows(sigma, vmax)
    del sigma
    if colour_bar:
      rgb = visualize.add_colorbar(rgb, vmax)
    visualize.save_png(tmps[1], rgb, 'RGB', {
        'sigma_max_grey': f'{vmax:.6g}',
        'sigma_units': 'grey levels [0,255]',
        'sigma_recalibration_scale': f'{sigma_scale:.6g}'})
    del rgb
    for tmp, final in zip(tmps, finals):
      os.replace(tmp, final)
  except OSError as e:
    raise UserError(f'{job.path}: cannot write the outputs to {outdir} '
                    f'({e})') from e
  finally:
    bar.close()
    for tmp in tmps:
      try:
        tmp.unlink()
      except OSError:
        pass
  s = predictor.scale
  return Result(job.path, finals[0], finals[1],
                finals[2] if log_var else None, (w, h), (w * s, h * s),
                image.grey, vmax, time.time() - start)


def _run(predictor: inference.Predictor, image: LoadedImage, tile: int,
         npy_path: pathlib.Path | None, sigma_scale: float,
         on_tile: Callable[[int], None]) -> tuple[np.ndarray, np.ndarray]:
  """The model over one image, strip by strip: (SR uint8, sigma in grey
  levels), streaming log sigma^2 to ``npy_path`` when given."""
  h, w, c = image.pixels.shape
  hr_shape = (h * predictor.scale, w * predictor.scale)
  sr = np.empty(hr_shape + (() if image.grey else (c,)), np.uint8)
  sigma = np.empty(hr_shape, np.float32)
  shift = np.float32(2 * math.log(sigma_scale))
  npy = _open_npy(npy_path, hr_shape + (c,)) if npy_path else None
  try:
    lr01 = image.pixels.astype(np.float32) / 255.0
    for r0, r1, mean, log_var in predictor.strips(lr01, tile, on_tile):
      sr[r0:r1] = pixels.mean_to_uint8(mean, grey=image.grey)
      if sigma_scale != 1.0:
        log_var = log_var + shift
      sigma[r0:r1] = pixels.sigma_grey(log_var)
      if npy is not None:
        npy.write(np.ascontiguousarray(log_var, np.float32).data)
  finally:
    if npy is not None:
      npy.close()
  return sr, sigma


def _error_line(path: pathlib.Path, e: Exception, tile: int) -> str:
  """The one ``error:`` line for a file that failed with ``e``."""
  if isinstance(e, UserError):
    line = f'error: {e}'
  elif isinstance(e, MemoryError):
    line = (f'error: {path}: out of memory (try smaller tiles, e.g. '
            f'{max(tile // 2, 16)} pixels)')
  else:
    line = (f'error: {path}: {type(e).__name__}: {e} (verbose mode shows '
            'the traceback)')
  return ' '.join(line.split())   # Strictly one line.


def predict_all(predictor: inference.Predictor, jobs: Sequence[Job],
                outdir: pathlib.Path, *, tile: int = 128,
                sigma_max: float | None = None, log_var: bool = True,
                verbose: bool = False, show_progress: bool = True,
                say: Say = show,
                on_result: Callable[[Result], None] | None = None,
                sigma_scale: float = 1.0, colour_bar: bool = True
                ) -> tuple[list[Result], list[tuple[pathlib.Path, str]]]:
  """Runs every job in order; returns (results, [(path, error line)]).

  A failing file costs one ``error:`` line (through ``say``), never the
  others. ``on_result(result)`` is called as soon as each file is written,
  before the next one starts. Progress (stderr): images done for a folder,
  tiles done for one large image.
  """
  results, failures = [], []
  bar = progress.Progress(len(jobs), 'predict', unit='img',
                          disable=not show_progress or len(jobs) <= 1)
  for job in jobs:
    try:
      result = predict_image(
          predictor, job, outdir, tile=tile, sigma_max=sigma_max,
          log_var=log_var, say=say, sigma_scale=sigma_scale,
          tile_progress=show_progress and len(jobs) == 1,
          colour_bar=colour_bar)
    except Exception as e:  # pylint: disable=broad-except
      line = _error_line(job.path, e, tile)
      if verbose:
        traceback.print_exc()
      say(line)
      failures.append((job.path, line))
    else:
      results.append(result)
      if on_result is not None:
        on_result(result)
    bar.update()
  bar.close()
  return results, failures


def split_done(jobs: Sequence[Job], outdir: pathlib.Path,
               log_var: bool = True) -> tuple[list[Job], list[Job]]:
  """(jobs still to run, jobs whose outputs are all in ``outdir``). Outputs
  are renamed into place only once all of a file's are complete, so a file
  with every output present was finished by an earlier run."""
  todo, done = [], []
  for job in jobs:
    complete = all(p.is_file() for p in job.outputs(outdir, log_var))
    (done if complete else todo).append(job)
  return todo, done
