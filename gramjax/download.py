"""``python -m gramjax.download --dataset=div2k,benchmark --dest=data``: fetch
(resuming), verify (sha256 recorded in DEST/CHECKSUMS.sha256 on the first
download) and unpack DIV2K and the SR benchmarks (layout: docs/data.md)."""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile

from absl import flags

from gramjax import __version__, cli
from gramjax.core import files, progress
from gramjax.core.errors import UserError

CHECKSUMS = 'CHECKSUMS.sha256'
TIMEOUT, RETRY_WAIT = 60.0, 2.0  # Seconds without data; before a 1st retry.
DIV2K = 'https://data.vision.ee.ethz.ch/cvl/DIV2K/'
# Archive name: (URL, folder under DEST it unpacks into).
ARCHIVES = {n: (f'{DIV2K}{n}.zip', 'DIV2K') for n in (
    'DIV2K_train_HR', 'DIV2K_valid_HR', 'DIV2K_train_LR_bicubic_X4',
    'DIV2K_valid_LR_bicubic_X4')}
ARCHIVES['benchmark'] = ('https://cv.snu.ac.kr/research/EDSR/benchmark.tar', '')
DATASETS = {'div2k': tuple(ARCHIVES)[:2], 'div2k_lr_x4': tuple(ARCHIVES)[2:4],
            **dict.fromkeys(('benchmark', 'set5', 'set14', 'bsd100',
                             'urban100'), ('benchmark',))}

flags.adopt_module_key_flags(cli)
_DATASET = flags.DEFINE_list('dataset', None, 'Comma-separated: ' + ', '.join(
    DATASETS) + ', or archive names (--list shows them).')
_DEST = flags.DEFINE_string('dest', 'data', 'Data folder.')
_URL = flags.DEFINE_multi_string('url', [], 'ARCHIVE=URL: fetch that archive '
                                 '(name or file name) from URL.')
_RETRIES = flags.DEFINE_integer('retries', 3, 'Retries after a network error, '
                                'each resuming.', lower_bound=0)
_DELETE = flags.DEFINE_bool('delete_archives', False, 'Delete each archive '
                            'once unpacked (a marker remembers it).')
_LIST = flags.DEFINE_bool('list', False, 'List the archives and exit.')


def _say(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _resolve(names, urls) -> tuple[list[str], dict[str, str]]:
  """Archive names for dataset or archive `names`; {archive: URL} for --url."""
  lower = {n.lower(): (n,) for n in ARCHIVES} | DATASETS
  archives, out = [], {}
  for name in (n.strip() for n in names if n.strip()):
    if name.lower() not in lower:
      raise UserError(f'unknown dataset {name!r}; choose from: '
                      f'{", ".join(DATASETS)} (or: {", ".join(ARCHIVES)})')
    archives += [a for a in lower[name.lower()] if a not in archives]
  if not archives:
    raise UserError(f'--dataset is needed; choose from: {", ".join(DATASETS)}')
  for value in urls:
    key, _, url = value.partition('=')
    found = [a for a in archives if key.lower() in (
        a.lower(), os.path.basename(ARCHIVES[a][0]).lower())]
    if not (found and re.match(r'[A-Za-z][\w+.-]*://', url)):
      raise UserError(f'--url={value}: expected --url=ARCHIVE=URL with '
                      f'ARCHIVE one of {", ".join(archives)}')
    out[found[0]] = url
  return archives, out


def read_checksums(dest) -> dict[str, str]:
  """DEST/CHECKSUMS.sha256 as {file name: hex digest} (empty if absent)."""
  path = pathlib.Path(dest) / CHECKSUMS
  lines = path.read_text().splitlines() if path.is_file() else []
  return {l[66:].strip(): l[:64].lower() for l in lines
          if re.match(r'[0-9a-fA-F]{64} [ *]\S', l)}


def _attempt(url: str, part: pathlib.Path, show: bool) -> None:
  """Appends the rest of `url` to `part`; ConnectionError: worth a retry."""
  offset = part.stat().st_size if part.exists() else 0
  headers = {'User-Agent': f'gramjax-download/{__version__}'}
  headers |= {'Range': f'bytes={offset}-'} if offset else {}
  try:
    response = urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
  except urllib.error.HTTPError as e:
    if e.code == 416 and offset:
      if e.headers.get('Content-Range', f'/{offset}').endswith(f'/{offset}'):
        return  # Complete already: the checksum decides.
      part.unlink()  # Larger than the remote file: start again.
    if e.code in (408, 416, 429) or e.code >= 500:
      raise ConnectionError(f'HTTP {e.code} {e.reason}') from e
    raise UserError(f'HTTP {e.code} {e.reason}') from e
  except (OSError, http.client.HTTPException) as e:
    raise ConnectionError(str(getattr(e, 'reason', '') or e) or repr(e)) from e
  with response:
    length, start = (response.headers.get(h, '') for h in (
        'Content-Length', 'Content-Range'))
    if response.status == 206 and not start.startswith(f'bytes {offset}-'):
      part.unlink()
      raise ConnectionError(f'asked for bytes {offset}-, got {start}')
    if response.status != 206 and offset:
      _say(f'{part.stem}: the server ignored the Range request: from zero')
      offset = 0
    end = offset + int(length) if length.isdigit() else None
    with progress.Progress(end, part.stem, unit='B', initial=offset,
                  disable=not show) as meter, open(
                      part, 'ab' if offset else 'wb') as f:
      try:
        while chunk := response.read(1 << 20):
          meter.update(f.write(chunk))
      except (TimeoutError, http.client.HTTPException) as e:
        raise ConnectionError(f'{type(e).__name__}: {e}') from e
  if end is not None and (size := part.stat().st_size) < end:
    raise ConnectionError(f'connection closed after {size} of {end} bytes')


def fetch(url: str, path, sha256: str | None = None, progress: bool = True,
          *, retries: int = 3, hint: str = '') -> str:
  """Downloads `url` to `path` (unless there; resuming `path`.part, retrying
  after RETRY_WAIT, 2 RETRY_WAIT, ...s) and returns its checked sha256."""
  path = pathlib.Path(path)
  part = path.with_name(path.name + '.part')
  for attempt in range(retries + 1):
    try:
      if not path.is_file():
        _attempt(url, part, progress)
        os.replace(part, path)
      break
    except ConnectionError as e:
      if attempt == retries:
        raise UserError(f'cannot download {url}: {e}{hint}') from e
      _say(f'{path.name}: {e}; retry {attempt + 1}/{retries}')
      time.sleep(RETRY_WAIT * 2**attempt)
    except UserError as e:  # HTTP 404, 403...
      raise UserError(f'cannot download {url}: {e}{hint}') from e
  with open(path, 'rb') as f:
    digest = hashlib.file_digest(f, 'sha256').hexdigest()
  if sha256 and digest != sha256:
    os.replace(path, corrupt := path.with_name(path.name + '.corrupt'))
    raise UserError(f'{path}: sha256 mismatch: {CHECKSUMS} says {sha256}, got '
                    f'{digest}; moved to {corrupt}. Run again to fetch it '
                    'afresh (if the recorded line is wrong, delete it).')
  return digest


def is_unpacked(name: str, target, sha256: str | None = None) -> bool:
  """Whether the marker says archive `name` (with that digest) is unpacked."""
  marker = pathlib.Path(target) / f'.{name}.unpacked'
  return marker.is_file() and (sha256 is None or sha256 in marker.read_text())


def safe_extract(archive, target, sha256: str | None = None) -> list[str]:
  """Unpacks into `target` through a temporary folder (tar: 'data' filter):
  nothing lands when a member is unsafe. Returns the top-level entries."""
  archive = pathlib.Path(archive)
  if is_unpacked(archive.name, target, sha256):
    return []
  with files.output_dir(target, '--dest') as target:
    tmp = target / f'.{archive.name}.unpacking'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
      if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:  # No filter: check each member.
          root = os.path.realpath(tmp)
          for name in zf.namelist():
            if os.path.commonpath([root, os.path.realpath(
                os.path.join(root, name))]) != root:
              raise UserError(f'{archive.name}: refusing to unpack: {name!r} '
                              'would land outside the target folder')
          zf.extractall(tmp)
      elif tarfile.is_tarfile(archive) and hasattr(tarfile, 'data_filter'):
        with tarfile.open(archive) as tf:
          tf.extractall(tmp, filter='data')
      else:
        raise UserError(f'{archive}: not a zip or tar archive (or Python < '
                        '3.11.4 for a tar); delete it and run again')
      entries = sorted(p.name for p in tmp.iterdir())
      for p in tmp.iterdir():  # Merged into folders that exist.
        if p.is_dir() and not p.is_symlink():
          shutil.copytree(p, target / p.name, symlinks=True,
                          dirs_exist_ok=True, copy_function=os.replace)
        else:
          os.replace(p, target / p.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
      raise UserError(f'{archive}: refusing to unpack: {e}') from e
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  files.write_text_atomic(target / f'.{archive.name}.unpacked', f'{sha256}\n')
  return entries


def download_datasets(names, dest, urls=(), *, progress=True, retries=3,
                      delete_archives=False) -> list[pathlib.Path]:
  """Fetches, verifies, unpacks `names` in `dest`; returns the folders."""
  archives, urls = _resolve(names, urls)
  dest = files.writable_dir(dest, '--dest')
  targets = []
  for name in archives:
    url, folder = ARCHIVES[name]
    path, target = dest / os.path.basename(url), dest / folder
    targets += [] if target in targets else [target]
    hint = f'. Put it at {path} by hand and run again, or use --url={name}=URL'
    url = urls.get(name, url)
    recorded = read_checksums(dest).get(path.name)
    if not path.exists() and is_unpacked(path.name, target, recorded):
      _say(f'{path.name}: already unpacked in {target}')
      continue
    if progress and not path.exists():
      _say(f'{path.name}: downloading {url}')
    digest = fetch(url, path, recorded, progress, retries=retries, hint=hint)
    if recorded != digest:
      _say(f'{path.name}: sha256 {digest} (none is published; recorded in '
           f'{dest / CHECKSUMS}, verified on later runs)')
      files.write_text_atomic(dest / CHECKSUMS, ''.join(
          f'{d}  {n}\n' for n, d in sorted(
              (read_checksums(dest) | {path.name: digest}).items())))
    verb = ('already unpacked in' if is_unpacked(path.name, target, digest)
            else 'unpacking into')
    _say(f'{path.name}: verified; {verb} {target}')
    safe_extract(path, target, digest)
    if delete_archives:
      path.unlink()  # The marker keeps it from being fetched again.
  return targets


def _main() -> None:
  if _LIST.value:
    print('\n'.join(f'{n:26s} {u} -> DEST/{f}' for n, (u, f) in
                    ARCHIVES.items()) + '\ndatasets: ' + ', '.join(DATASETS))
    return
  try:
    with files.output_dir(_DEST.value, '--dest') as dest:
      targets = download_datasets(_DATASET.value or [], dest, _URL.value,
                                  retries=_RETRIES.value,
                                  delete_archives=_DELETE.value)
  except OSError as e:
    raise UserError(str(e)) from e
  print('done: ' + ', '.join(str(t) for t in targets))


if __name__ == '__main__':
  cli.start(_main)
