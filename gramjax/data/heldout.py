"""The record of the training images a run held out
(``config.data.holdout``), written when training starts:
``WORKDIR/heldout.json`` with each image's path, name and content digest.
Calibrating on ``heldout`` reads it, so a file added to, changed in or
removed from the training folder later cannot turn training images into
"held-out" ones.

A part of them is named like a Python slice, ``heldout[:10]`` or
``heldout[10:]`` (in the recorded order): one part to validate on while
training and another to calibrate on, so that choosing a checkpoint never
looks at the calibration images.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re

from gramjax.core import files
from gramjax.core.errors import UserError
from gramjax.data import images as images_lib
from gramjax.data import pipeline

FILE_NAME = 'heldout.json'
_SPEC = re.compile(r'heldout(?:\[(-?\d*):(-?\d*)\])?')


def is_spec(spec: str) -> bool:
  """Whether ``spec`` names held-out images (``heldout``, ``heldout[a:b]``)
  rather than a folder."""
  return str(spec).startswith('heldout')


def part(spec: str, key: str) -> slice:
  """The slice that ``spec`` (``heldout`` or ``heldout[a:b]``, a and b
  optional integers) takes of the held-out images; a ``UserError`` names
  ``key`` for anything else."""
  m = _SPEC.fullmatch(str(spec))
  if not m:
    raise UserError(f'{key}={spec}: give heldout or a slice of it such as '
                    'heldout[:10] or heldout[10:]')
  to_int = lambda x: int(x) if x else None
  return slice(to_int(m.group(1)), to_int(m.group(2)))


def select(images: list, spec: str, key: str) -> list:
  """The part ``spec`` of ``images``; a ``UserError`` if it is empty."""
  out = images[part(spec, key)]
  if not out:
    raise UserError(f'{key}={spec}: selects none of the {len(images)} '
                    'held-out images')
  return out


def _describe(paths) -> list[dict]:
  return [{'name': p.name, 'path': str(pathlib.Path(p).absolute()),
           'sha256': images_lib.content_digest(images_lib.load_image(p))}
          for p in paths]


def record(workdir: str | os.PathLike, data_config) -> pathlib.Path | None:
  """Writes the record when the run holds images out of a folder of image
  files (and none is there yet); a record there that no longer matches
  the folder is kept, with a warning. Returns its path, or None."""
  if not data_config.holdout:
    return None
  try:
    paths = pipeline.held_out_images(data_config)
  except UserError:
    return None               # A built-in or prepared set: none to name.
  path = pathlib.Path(workdir) / FILE_NAME
  try:
    kept = [im['path'] for im in json.loads(path.read_text())['images']]
  except FileNotFoundError:
    kept = None
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning('%s: unreadable (%s); recorded again from the training '
                    'folder as it is now', path, e)
    kept = None
  if kept is not None:
    if kept != [str(p.absolute()) for p in paths]:
      logging.warning('%s: the training folder now holds out other images '
                      'than when this run started; calibration on heldout '
                      'keeps the recorded ones', path)
    return path
  files.write_json(path, {'train_dir': str(data_config.train_dir),
                          'holdout': int(data_config.holdout),
                          'images': _describe(paths)}, 'heldout record')
  return path


def recorded(workdir: str | os.PathLike, spec: str = 'heldout',
             key: str = 'calibrate_on') -> list[pathlib.Path]:
  """The held-out images of the record (the part ``spec`` of them), each
  checked to hold the same pixels as when training started; a
  ``UserError`` names what is missing or changed."""
  part(spec, key)
  path = pathlib.Path(workdir) / FILE_NAME
  if not path.exists():
    raise UserError(f'{path} does not exist: this run recorded no held-out '
                    'images (trained without config.data.holdout, from a '
                    'built-in or prepared set, or by an older gramjax); '
                    'calibrate on a folder of images instead')
  try:
    entries = json.loads(path.read_text())['images']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f'{path}: not a held-out record ({e})') from e
  out = []
  for entry in select(entries, spec, key):
    image = pathlib.Path(entry['path'])
    if not image.is_file():
      raise UserError(f'{path}: held-out image {image} has vanished')
    if images_lib.content_digest(images_lib.load_image(image)) != (
        entry['sha256']):
      raise UserError(f'{path}: held-out image {image} has changed since '
                      'training started')
    out.append(image)
  return out
