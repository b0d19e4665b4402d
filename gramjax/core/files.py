"""Small file-system helpers: writable folders that vanish again when a run
fails before writing anything, and atomic text writes."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Iterator

from gramjax.core.errors import UserError


def _named(what: str, path) -> str:
  """``what`` and ``path`` for a message: ``--out=PATH`` when a command
  names its flag, ``workdir PATH`` when the library names the role."""
  return f'{what}={path}' if what.startswith('-') else f'{what} {path}'


def writable_dir(path: str | os.PathLike, what: str) -> pathlib.Path:
  """Creates ``path`` if needed and proves it is writable; else a
  ``UserError`` naming ``what`` it is (e.g. 'workdir')."""
  path = pathlib.Path(os.path.expanduser(str(path)))
  if path.exists() and not path.is_dir():
    raise UserError(f'{_named(what, path)}: exists and is not a folder')
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise UserError(f'{_named(what, path)}: cannot write there ({e})') from e
  return path


def _holds_files(path: pathlib.Path) -> bool:
  return any(f for _, _, f in os.walk(path))


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, what: str) -> Iterator[pathlib.Path]:
  """``writable_dir`` for the duration of a command: if the command fails
  leaving no file in the folders this created (``path`` and any missing
  parents), they are removed again (a failed run leaves nothing behind)."""
  path = pathlib.Path(os.path.expanduser(str(path)))
  # The outermost folder this call creates (parents included), if any.
  created = None
  for folder in (path.absolute(), *path.absolute().parents):
    if folder.exists():
      break
    created = folder
  try:
    yield writable_dir(path, what)
  except BaseException:
    if created is not None and created.is_dir() and not _holds_files(created):
      shutil.rmtree(created, ignore_errors=True)
    raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename, so a
  kill never leaves half a file."""
  path = pathlib.Path(path)
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(text)
  os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj, what: str = 'JSON file') -> None:
  """Writes ``obj`` as indented JSON (atomically, creating the folder);
  a ``UserError`` naming ``what`` it is when it cannot."""
  path = pathlib.Path(os.path.expanduser(str(path)))
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(obj, indent=2) + '\n')
  except OSError as e:
    raise UserError(f'{_named(what, path)}: cannot write it ({e})') from e
