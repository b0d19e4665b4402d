"""Prepared folders: an image folder decoded once for fast random access.

Made by ``python -m gramjax.prepare --input=DIR --output=OUT`` (or by
training itself with ``config.data.prepared_dir``).

Decodes every image once into an uncompressed ``.npy`` file (uint8 H x W x 3)
under OUT, which training memory-maps: a crop is then a slice of a mapped
file, with no PNG decoding (decoding per crop manages ~20 crops/s on 2
cores; mapped arrays thousands). ``OUT/manifest.json`` lists the images;
point ``--config.data.train_dir`` at OUT, or set
``--config.data.prepared_dir=OUT`` and training prepares it on first use.

With ``--lr_dir`` (e.g. DIV2K's official ``DIV2K_train_LR_bicubic/X4``) each
HR image is paired with its LR file (``0001.png`` <-> ``0001x4.png`` or the
same stem) and both are stored, for ``config.data.lr_source = 'files'``.

Re-running is cheap: images whose source file (size, mtime) is unchanged are
kept; files are written atomically and the manifest is saved as it goes, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import numpy as np

from gramjax.core import files
from gramjax.core import pixels
from gramjax.data import images as images_lib
from gramjax.core.errors import UserError
from gramjax.core.progress import Progress

MANIFEST = 'manifest.json'
VERSION = 1


def is_prepared(path: str | os.PathLike) -> bool:
  return (pathlib.Path(path) / MANIFEST).is_file()


def _save_npy(path: pathlib.Path, arr: np.ndarray) -> None:
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'wb') as f:
    np.save(f, np.ascontiguousarray(arr))
  os.replace(tmp, path)


def _write_manifest(out: pathlib.Path, manifest: dict) -> None:
  files.write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))


def find_lr_file(hr_path: pathlib.Path, lr_files: dict[str, pathlib.Path],
                 scale: int, lr_dir: pathlib.Path) -> pathlib.Path:
  """The LR partner of an HR file: same stem, or stem + 'x{scale}'."""
  for stem in (f'{hr_path.stem}x{scale}', hr_path.stem):
    if stem in lr_files:
      return lr_files[stem]
  raise UserError(f'{hr_path}: no LR partner ({hr_path.stem}x{scale}.* or '
                  f'{hr_path.stem}.*) in {lr_dir}')


def check_pair(hr: np.ndarray, lr: np.ndarray, scale: int, hr_path,
               lr_path) -> None:
  want = (hr.shape[0] // scale, hr.shape[1] // scale)
  if lr.shape[:2] != want:
    raise UserError(f'{lr_path}: LR image is {lr.shape[1]}x{lr.shape[0]}, '
                    f'but {hr_path} ({hr.shape[1]}x{hr.shape[0]}) at x{scale}'
                    f' needs {want[1]}x{want[0]}')


def _previous_entries(out: pathlib.Path, lr_dir, scale: int) -> dict:
  """The entries of an earlier preparation of ``out`` with the same
  settings, by name ({} for none or a damaged manifest: prepare again)."""
  if not is_prepared(out):
    return {}
  try:
    previous = json.loads((out / MANIFEST).read_text())
    if (previous.get('version') == VERSION and
        previous.get('lr_dir') == (str(lr_dir) if lr_dir else None) and
        previous.get('scale') == scale):
      return {e['name']: e for e in previous['images']}
  except (ValueError, KeyError, TypeError):
    pass
  return {}


def _prepare_one(path: pathlib.Path, out: pathlib.Path, lr_path, prev,
                 scale: int, min_size: int) -> tuple[dict, bool]:
  """The manifest entry of one image, and whether the earlier one (same
  source size and time, its arrays still there) was reused."""
  stat = path.stat()
  entry = {'name': path.name, 'hr': f'hr/{path.name}.npy',
           'source_size': stat.st_size, 'source_mtime': stat.st_mtime}
  if lr_path is not None:
    lst = lr_path.stat()
    entry.update(lr=f'lr/{path.name}.npy', lr_source_size=lst.st_size,
                 lr_source_mtime=lst.st_mtime)
  if (prev and all(prev.get(k) == entry[k] for k in entry) and
      (out / entry['hr']).is_file() and
      (lr_path is None or (out / entry['lr']).is_file())):
    return entry | {'shape': prev['shape']}, True
  hr = images_lib.load_image(path)
  pixels.require_size(hr.shape, min_size, path, f'{min_size}px')
  if lr_path is not None:
    lr = images_lib.load_image(lr_path)
    check_pair(hr, lr, scale, path, lr_path)
    _save_npy(out / entry['lr'], lr)
  _save_npy(out / entry['hr'], hr)
  return entry | {'shape': list(hr.shape)}, False


def prepare(src: str | os.PathLike, out: str | os.PathLike, *,
            lr_dir: str | os.PathLike | None = None, scale: int = 4,
            min_size: int = 1, progress: bool = True) -> dict:
  """Prepares ``src`` (a folder of images) into ``out``; returns the manifest.

  Raises ``UserError`` naming the file for unreadable images, images under
  ``min_size`` pixels, or a missing/mismatched LR partner.
  """
  src_paths = images_lib.resolve_images(str(src))
  out = pathlib.Path(out)
  try:
    (out / 'hr').mkdir(parents=True, exist_ok=True)
    if lr_dir:
      (out / 'lr').mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f'{out}: cannot create the prepared folder ({e})') from e
  lr_files = {}
  if lr_dir:
    lr_dir = pathlib.Path(lr_dir)
    lr_files = {p.stem: p for p in images_lib.resolve_images(
        str(lr_dir), key='the LR folder')}
  old = _previous_entries(out, lr_dir, scale)
  manifest = {'version': VERSION, 'source': str(pathlib.Path(src).absolute()),
              'lr_dir': str(lr_dir) if lr_dir else None, 'scale': scale,
              'complete': False, 'images': []}
  last_save, reused = time.time(), 0

  def save_partial():
    done = {e['name'] for e in manifest['images']}
    pending = [e for n, e in old.items() if n not in done]
    _write_manifest(out, manifest | {'images': manifest['images'] + pending})

  try:
    with Progress(len(src_paths), f'preparing {out}',
                  disable=not progress) as bar:
      for path in src_paths:
        lr_path = (find_lr_file(path, lr_files, scale, lr_dir) if lr_dir
                   else None)
        entry, was_reused = _prepare_one(path, out, lr_path,
                                         old.get(path.name), scale, min_size)
        manifest['images'].append(entry)
        reused += was_reused
        bar.update()
        if time.time() - last_save > 5:  # Progress survives a kill.
          save_partial()
          last_save = time.time()
  except BaseException:
    save_partial()  # An error or Ctrl-C keeps what is done.
    raise
  manifest['complete'] = True
  _write_manifest(out, manifest)
  if reused:
    print(f'{out}: {reused} of {len(src_paths)} images were already prepared',
          file=sys.stderr)
  return manifest


def open_prepared(path: str | os.PathLike
                  ) -> tuple[list[str], list[np.ndarray],
                             list[np.ndarray] | None]:
  """Memory-maps a prepared folder: (names, HR arrays, LR arrays or None)."""
  path = pathlib.Path(path)
  try:
    manifest = json.loads((path / MANIFEST).read_text())
    entries = manifest['images']
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f'{path / MANIFEST}: unreadable manifest ({e}); run '
                    f'python -m gramjax.prepare again') from e
  if not manifest.get('complete'):
    raise UserError(f'{path}: preparation did not finish; run python -m '
                    'gramjax.prepare again (it resumes)')
  names, hrs, lrs = [], [], []
  for e in entries:
    try:
      hrs.append(np.load(path / e['hr'], mmap_mode='r'))
      if e.get('lr'):
        lrs.append(np.load(path / e['lr'], mmap_mode='r'))
    except (OSError, ValueError) as err:
      raise UserError(f'{path / e["hr"]}: cannot map prepared image ({err});'
                      ' run python -m gramjax.prepare again') from err
    names.append(e['name'])
  return names, hrs, (lrs if lrs else None)
