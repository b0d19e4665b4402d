"""The inputs of ``python -m gramjax.predict``: listing them, planning
output names that never overwrite an input, reading a file (one
``UserError`` line naming it when it cannot be read), and telling the
inputs whose outputs are complete from those still to run.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import warnings
from typing import Callable, Sequence

import numpy as np
import tqdm

from gramjax import data
from gramjax.core.errors import UserError
from gramjax.metrics import quality as metrics

# What a folder's files are tried as: the same suffixes as everywhere.
IMAGE_SUFFIXES = data.IMAGE_SUFFIXES
SR_SUFFIX, UNCERTAINTY_SUFFIX, LOG_VAR_SUFFIX = (
    '_sr.png', '_uncertainty.png', '_log_var.npy')
OUTPUT_SUFFIXES = (SR_SUFFIX, UNCERTAINTY_SUFFIX, LOG_VAR_SUFFIX)
# With an interval calibration: the half-width map and its float values.
INTERVAL_SUFFIX, INTERVAL_NPY_SUFFIX = '_interval.png', '_interval.npy'

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

  def outputs(self, outdir: pathlib.Path, log_var: bool = True,
              interval: bool = False) -> dict[str, pathlib.Path]:
    """The output paths by role: ``sr``, ``uncertainty`` and with
    ``log_var`` the raw ``log_var`` .npy; with ``interval`` the half-width
    map and (with ``log_var``) its .npy."""
    roles = {'sr': SR_SUFFIX, 'uncertainty': UNCERTAINTY_SUFFIX}
    if log_var:
      roles['log_var'] = LOG_VAR_SUFFIX
    if interval:
      roles['interval'] = INTERVAL_SUFFIX
      if log_var:
        roles['interval_npy'] = INTERVAL_NPY_SUFFIX
    return {role: outdir / (self.stem + s) for role, s in roles.items()}


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
                 say: Say = show, log_var: bool = True,
                 interval: bool = False) -> list[Job]:
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
    for out in j.outputs(outdir, log_var, interval).values():
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


def split_done(jobs: Sequence[Job], outdir: pathlib.Path,
               log_var: bool = True, interval: bool = False
               ) -> tuple[list[Job], list[Job]]:
  """(jobs still to run, jobs whose outputs are all in ``outdir``). Outputs
  are renamed into place only once all of a file's are complete, so a file
  with every output present was finished by an earlier run."""
  todo, done = [], []
  for job in jobs:
    complete = all(p.is_file()
                   for p in job.outputs(outdir, log_var, interval).values())
    (done if complete else todo).append(job)
  return todo, done
