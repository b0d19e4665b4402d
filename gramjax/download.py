"""Download DIV2K and the SR benchmark sets: resumable, checksummed, unpacked.

``python -m gramjax.download --dataset=div2k,div2k_lr_x4 --dest=data``

Needs internet access (the standard library's urllib; no extra packages).

Datasets (``--dataset`` takes a comma-separated list; an archive name such as
``DIV2K_train_HR`` works as well; ``--list`` prints them):

==============  =============================================  ================
dataset         archives                                        unpacked to
==============  =============================================  ================
div2k           DIV2K_train_HR.zip, DIV2K_valid_HR.zip          DEST/DIV2K/
div2k_lr_x4     DIV2K_train_LR_bicubic_X4.zip,                  DEST/DIV2K/
                DIV2K_valid_LR_bicubic_X4.zip
benchmark       benchmark.tar (EDSR's Set5, Set14, B100 =       DEST/
                BSD100, Urban100); alias set5, set14, bsd100,
                urban100
==============  =============================================  ================

which gives the layout the rest of the project expects::

  DEST/DIV2K/DIV2K_train_HR/0001.png ... 0800.png
  DEST/DIV2K/DIV2K_valid_HR/0801.png ... 0900.png
  DEST/DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png ...
  DEST/DIV2K/DIV2K_valid_LR_bicubic/X4/0801x4.png ...
  DEST/benchmark/{Set5,Set14,B100,Urban100}/HR/*.png  (and LR_bicubic/X*/)

(the official DIV2K zips' members already start with ``DIV2K_train_HR/``
etc.; EDSR's benchmark.tar's with ``benchmark/``). Train with
``--config.data.train_dir=DEST/DIV2K/DIV2K_train_HR`` (the default
``data/DIV2K/DIV2K_train_HR`` with ``--dest=data``).

URLs move. DIV2K comes from its official site
(https://data.vision.ee.ethz.ch/cvl/DIV2K/); the benchmark archive is the one
EDSR and BasicSR point to (https://cv.snu.ac.kr/research/EDSR/benchmark.tar).
Where an address no longer works:

* ``--url=ARCHIVE=URL`` replaces the URL of one archive (ARCHIVE is its name
  or file name, e.g. ``--url=benchmark.tar=https://mirror/benchmark.tar``;
  a bare ``--url=URL`` when only one archive is selected); repeatable.
* ``--base_url=URL`` fetches every archive from ``URL/<file name>`` (a mirror).
* or download the file by hand and place it at ``DEST/<file name>``: the
  helper then verifies and unpacks it without downloading.

Checksums. No sha256 is published with these archives and none is made up
here: the registry's ``sha256`` is None. On the first download the helper
computes the digest, prints it and records it in ``DEST/CHECKSUMS.sha256``
(``sha256sum -c`` format); later runs verify the archive against that record.
``--sha256=ARCHIVE=HEX`` (or a bare ``--sha256=HEX`` for one archive) pins a
value. A mismatch is an error naming the file and both digests, and the bad
file is renamed to ``<file>.corrupt`` (never used); run again to download it
afresh (if the recorded value is the wrong one, delete its line).

Downloads go to ``DEST/<file>.part`` and resume with an HTTP Range request
after an interruption (servers that ignore Range restart from zero); a
complete, verified archive is renamed into place and not downloaded again.
Unpacking refuses archives with members that would land outside the target
(absolute paths, ``..``, links pointing outside, device files) before writing
anything, unpacks into a temporary folder inside the target and renames the
top-level entries into place, then writes a marker
(``<target>/.<file>.unpacked``) so later runs skip it. ``--delete_archives``
removes each archive once unpacked (the marker keeps it from being fetched
again). Errors are one line (``--verbose`` for tracebacks), exit status 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
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
from typing import Iterable, Mapping, Sequence

from gramjax import __version__
from gramjax.errors import UserError
from gramjax.progress import format_duration

CHECKSUMS = 'CHECKSUMS.sha256'
CHUNK = 1 << 20
USER_AGENT = f'gramjax-download/{__version__} (Python urllib)'


class DownloadError(UserError):
  """A network or HTTP failure, with the URL and what to do about it."""


class ChecksumError(UserError):
  """An archive whose sha256 is not the expected one."""


class UnsafeArchiveError(UserError):
  """An archive member that would be written outside the target folder."""


class _Retryable(Exception):
  """A transient failure: the download is retried (resuming) a few times."""


@dataclasses.dataclass(frozen=True)
class Archive:
  """One downloadable file and where it unpacks.

  Attributes:
    name: registry key (also accepted by --dataset, --url, --sha256).
    url: where to fetch it.
    filename: the local file name, DEST/filename.
    sha256: expected hex digest, or None where unknown (then recorded in
      DEST/CHECKSUMS.sha256 on the first download and verified after).
    unpack_dir: folder under DEST to unpack into ('' = DEST itself).
    homepage: where a user finds it by hand.
    provides: paths under DEST that exist once it is unpacked (checked
      afterwards: a warning, not an error, if the upstream layout changed).
  """
  name: str
  url: str
  filename: str
  sha256: str | None
  unpack_dir: str
  homepage: str
  provides: tuple[str, ...] = ()


DIV2K_HOME = 'https://data.vision.ee.ethz.ch/cvl/DIV2K/'
BENCHMARK_HOME = 'https://github.com/sanghyun-son/EDSR-PyTorch'


def _div2k(name: str, provides: str) -> Archive:
  return Archive(name=name, url=DIV2K_HOME + name + '.zip',
                 filename=name + '.zip', sha256=None, unpack_dir='DIV2K',
                 homepage=DIV2K_HOME, provides=(provides,))


ARCHIVES: dict[str, Archive] = {a.name: a for a in (
    _div2k('DIV2K_train_HR', 'DIV2K/DIV2K_train_HR'),
    _div2k('DIV2K_valid_HR', 'DIV2K/DIV2K_valid_HR'),
    _div2k('DIV2K_train_LR_bicubic_X4', 'DIV2K/DIV2K_train_LR_bicubic/X4'),
    _div2k('DIV2K_valid_LR_bicubic_X4', 'DIV2K/DIV2K_valid_LR_bicubic/X4'),
    Archive(name='benchmark',
            url='https://cv.snu.ac.kr/research/EDSR/benchmark.tar',
            filename='benchmark.tar', sha256=None, unpack_dir='',
            homepage=BENCHMARK_HOME,
            provides=('benchmark/Set5/HR', 'benchmark/Set14/HR',
                      'benchmark/B100/HR', 'benchmark/Urban100/HR')),
)}

DATASETS: dict[str, tuple[str, ...]] = {
    'div2k': ('DIV2K_train_HR', 'DIV2K_valid_HR'),
    'div2k_lr_x4': ('DIV2K_train_LR_bicubic_X4', 'DIV2K_valid_LR_bicubic_X4'),
    'benchmark': ('benchmark',),
    'set5': ('benchmark',),
    'set14': ('benchmark',),
    'bsd100': ('benchmark',),
    'urban100': ('benchmark',),
}


def _say(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def resolve_archives(names: Iterable[str]) -> list[Archive]:
  """Dataset or archive names -> archives, in order, without repeats."""
  by_lower = {k.lower(): v for k, v in ARCHIVES.items()}
  out: list[Archive] = []
  for raw in names:
    name = raw.strip()
    if not name:
      continue
    if name.lower() in DATASETS:
      found = [ARCHIVES[a] for a in DATASETS[name.lower()]]
    elif name.lower() in by_lower:
      found = [by_lower[name.lower()]]
    else:
      raise UserError(
          f'unknown dataset {name!r}; choose from: {", ".join(DATASETS)} '
          f'(or an archive: {", ".join(ARCHIVES)})')
    out.extend(a for a in found if a not in out)
  if not out:
    raise UserError(f'no dataset given; choose from: {", ".join(DATASETS)}')
  return out


# --------------------------------------------------------------- checksums --

def sha256_file(path: str | os.PathLike) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(CHUNK):
      h.update(chunk)
  return h.hexdigest()


def _normalize_sha256(value: str | None) -> str | None:
  if value is None:
    return None
  value = value.strip().lower()
  if not re.fullmatch(r'[0-9a-f]{64}', value):
    raise UserError(f'not a sha256 hex digest (64 hex digits): {value!r}')
  return value


def read_checksums(dest: str | os.PathLike) -> dict[str, str]:
  """DEST/CHECKSUMS.sha256 as {file name: hex digest} (empty if absent)."""
  path = pathlib.Path(dest) / CHECKSUMS
  out = {}
  if path.is_file():
    for line in path.read_text().splitlines():
      m = re.fullmatch(r'\s*([0-9a-fA-F]{64}) [ *](.+?)\s*', line)
      if m:
        out[m.group(2)] = m.group(1).lower()
  return out


def record_checksum(dest: str | os.PathLike, filename: str,
                    digest: str) -> None:
  """Adds or replaces one line of DEST/CHECKSUMS.sha256 (atomically)."""
  dest = pathlib.Path(dest)
  sums = read_checksums(dest)
  sums[filename] = digest
  tmp = dest / (CHECKSUMS + '.tmp')
  tmp.write_text(''.join(f'{d}  {n}\n' for n, d in sorted(sums.items())))
  os.replace(tmp, dest / CHECKSUMS)


def _verify(path: pathlib.Path, final: pathlib.Path, expected: str | None,
            source: str) -> str:
  """Digest of `path`; on a mismatch moves it to `final`.corrupt and raises."""
  digest = sha256_file(path)
  if expected is not None and digest != expected:
    corrupt = final.with_name(final.name + '.corrupt')
    os.replace(path, corrupt)
    raise ChecksumError(
        f'{final}: sha256 mismatch: expected {expected}'
        f'{f" ({source})" if source else ""}, got {digest}; the file was '
        f'moved to {corrupt}. Run again to download it afresh (if the '
        'expected value is the wrong one, fix or delete it).')
  return digest


# ---------------------------------------------------------------- progress --

class ByteProgress:
  """Bytes, percent (when the size is known), MB/s and ETA on stderr.

  On a terminal one line is redrawn at most 4 times a second; otherwise a
  plain line is printed at most every `interval` seconds (and at the end).
  """

  def __init__(self, desc: str, total: int | None, done: int = 0, *,
               stream=None, interval: float = 5.0):
    self.desc, self.total, self.done = desc, total, done
    self.stream = stream if stream is not None else sys.stderr
    self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())
    self.interval = 0.25 if self.tty else interval
    self.start_done = done
    self.start = self.last = time.monotonic()

  def line(self) -> str:
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = (self.done - self.start_done) / elapsed
    text = f'{self.desc}: {self.done / 1e6:.1f} MB'
    if self.total:
      eta = (self.total - self.done) / rate if rate > 0 else float('nan')
      text += (f' / {self.total / 1e6:.1f} MB '
               f'({100.0 * self.done / self.total:.1f}%)')
    text += f' {rate / 1e6:.2f} MB/s'
    if self.total:
      text += f' ETA {format_duration(eta)}'
    return text

  def update(self, n: int) -> None:
    self.done += n
    now = time.monotonic()
    if now - self.last >= self.interval:
      self.last = now
      self._emit()

  def _emit(self) -> None:
    if self.tty:
      self.stream.write('\r' + self.line() + '   ')
    else:
      self.stream.write(self.line() + '\n')
    self.stream.flush()

  def close(self) -> None:
    self._emit()
    if self.tty:
      self.stream.write('\n')
      self.stream.flush()


# ---------------------------------------------------------------- download --

def _content_range(value: str | None) -> tuple[int | None, int | None]:
  """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
  m = re.fullmatch(r'\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*', value or '')
  if not m:
    return None, None
  start = int(m.group(1)) if m.group(1) is not None else None
  total = int(m.group(2)) if m.group(2) != '*' else None
  return start, total


def _int_header(headers, name: str) -> int | None:
  value = headers.get(name)
  return int(value) if value is not None and value.strip().isdigit() else None


def _download_to_part(url: str, part: pathlib.Path, progress: bool,
                      timeout: float) -> None:
  """One attempt: fetches the rest of `url` into `part` (resuming)."""
  offset = part.stat().st_size if part.exists() else 0
  headers = {'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity'}
  if offset:
    headers['Range'] = f'bytes={offset}-'
  request = urllib.request.Request(url, headers=headers)
  try:
    response = urllib.request.urlopen(request, timeout=timeout)
  except urllib.error.HTTPError as e:
    if e.code == 416 and offset:
      _, total = _content_range(e.headers.get('Content-Range'))
      if total is None or total == offset:
        return  # Nothing left to fetch; the checksum decides the rest.
      part.unlink()
      raise _Retryable(f'the partial file ({offset} bytes) is larger than '
                       f'the remote file ({total} bytes); restarting') from e
    if e.code in (408, 429) or e.code >= 500:
      raise _Retryable(f'HTTP {e.code} {e.reason}') from e
    raise DownloadError(f'HTTP {e.code} {e.reason}') from e
  except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
    raise _Retryable(str(getattr(e, 'reason', None) or e) or
                     type(e).__name__) from e

  with response:
    length = _int_header(response.headers, 'Content-Length')
    if response.status == 206:
      start, total = _content_range(response.headers.get('Content-Range'))
      if start != offset:
        part.unlink()
        raise _Retryable(f'the server sent a different range ({start}) than '
                         f'requested ({offset}); restarting from zero')
      mode = 'ab'
    elif response.status == 200:
      if offset:
        _say(f'{part.name}: the server ignored the Range request; '
             'restarting from zero')
      offset, total, mode = 0, length, 'wb'
    else:
      raise DownloadError(f'unexpected HTTP status {response.status}')
    end = offset + length if length is not None else total
    if end is not None:
      free = shutil.disk_usage(part.parent).free
      if free < end - offset:
        raise DownloadError(
            f'not enough disk space in {part.parent}: {end - offset} bytes '
            f'needed, {free} free')
    meter = ByteProgress(part.name[:-len('.part')], end, offset) if (
        progress) else None
    received = 0
    try:
      with open(part, mode) as f:
        while chunk := response.read(CHUNK):
          f.write(chunk)
          received += len(chunk)
          if meter:
            meter.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    except (OSError, http.client.HTTPException) as e:
      if isinstance(e, OSError) and e.errno is not None and not isinstance(
          e, (ConnectionError, TimeoutError)):
        raise  # A local error (e.g. disk full): not worth retrying.
      raise _Retryable(f'connection lost after {offset + received} bytes '
                       f'({type(e).__name__}: {e})') from e
    finally:
      if meter:
        meter.close()
    if end is not None and offset + received < end:
      raise _Retryable(f'connection closed after {offset + received} of '
                       f'{end} bytes')


def fetch(url: str, dest_path: str | os.PathLike, sha256: str | None = None,
          progress: bool = True, *, retries: int = 3,
          retry_wait: float = 2.0, timeout: float = 60.0,
          sha256_source: str = '') -> str:
  """Downloads `url` to `dest_path` (resumably) and returns its sha256.

  A file already at `dest_path` is not downloaded again, only verified. The
  download goes to `dest_path`.part; an existing .part is resumed with an
  HTTP Range request, retrying up to `retries` times after transient errors
  (waiting retry_wait, 2 retry_wait, ...). Once complete it is verified
  against `sha256` (when given) and renamed into place; on a mismatch it is
  moved to `dest_path`.corrupt and ChecksumError names both digests.

  Raises:
    DownloadError: the URL failed (the .part, if any, is kept for resuming).
    ChecksumError: wrong digest.
  """
  dest = pathlib.Path(dest_path)
  expected = _normalize_sha256(sha256)
  if dest.is_file():
    if progress:
      _say(f'{dest.name}: already downloaded; verifying')
    return _verify(dest, dest, expected, sha256_source)
  dest.parent.mkdir(parents=True, exist_ok=True)
  part = dest.with_name(dest.name + '.part')
  attempt = 0
  while True:
    try:
      _download_to_part(url, part, progress, timeout)
      break
    except _Retryable as e:
      attempt += 1
      if attempt > retries:
        kept = (f'; the partial file {part} is kept: run again to resume'
                if part.exists() else '')
        raise DownloadError(f'cannot download {url}: {e}{kept}') from e
      wait = retry_wait * 2 ** (attempt - 1)
      _say(f'{dest.name}: {e}; retrying in {wait:g}s '
           f'({attempt}/{retries})')
      time.sleep(wait)
    except DownloadError as e:
      raise DownloadError(f'cannot download {url}: {e}') from e
  if not part.exists():  # A 416 on an empty request would land here.
    raise DownloadError(f'cannot download {url}: nothing was received')
  digest = _verify(part, dest, expected, sha256_source)
  os.replace(part, dest)
  return digest


# ------------------------------------------------------------------ unpack --

def _split(name: str) -> list[str]:
  return [p for p in re.split(r'[\\/]', name) if p not in ('', '.')]


def _member_parts(name: str, archive: str) -> list[str]:
  """A member name as path components; refuses absolute and '..' names."""
  if name.startswith(('/', '\\')) or re.match(r'[A-Za-z]:', name):
    raise UnsafeArchiveError(
        f'{archive}: refusing to unpack: member {name!r} has an absolute '
        'path')
  parts = _split(name)
  if '..' in parts:
    raise UnsafeArchiveError(
        f"{archive}: refusing to unpack: member {name!r} contains '..'")
  return parts


def _resolve_inside(parts: list[str], links: Mapping[str, str], member: str,
                    archive: str) -> list[str]:
  """Resolves `parts` (relative to the target) through the archive's own
  symlinks; raises if any step leaves the target."""
  cur: list[str] = []
  todo = list(parts)
  hops = 0
  while todo:
    p = todo.pop(0)
    if p in ('', '.'):
      continue
    if p == '..':
      if not cur:
        raise UnsafeArchiveError(
            f'{archive}: refusing to unpack: member {member!r} points '
            'outside the target folder')
      cur.pop()
      continue
    cur.append(p)
    target = links.get('/'.join(cur))
    if target is not None:
      hops += 1
      if hops > 40:
        raise UnsafeArchiveError(
            f'{archive}: refusing to unpack: member {member!r}: symlink loop')
      if target.startswith(('/', '\\')) or re.match(r'[A-Za-z]:', target):
        raise UnsafeArchiveError(
            f'{archive}: refusing to unpack: member {member!r} leads to an '
            f'absolute symlink target {target!r}')
      cur.pop()
      todo = re.split(r'[\\/]', target) + todo
  return cur


def _check_tar(members: Sequence[tarfile.TarInfo], archive: str) -> None:
  links = {}
  for m in members:
    parts = _member_parts(m.name, archive)
    if m.issym():
      links['/'.join(parts)] = m.linkname
  for m in members:
    parts = _member_parts(m.name, archive)
    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
      kind = ('device file' if m.ischr() or m.isblk() else
              'FIFO' if m.isfifo() else 'special file')
      raise UnsafeArchiveError(
          f'{archive}: refusing to unpack: member {m.name!r} is a {kind}')
    if m.issym():
      if m.linkname.startswith(('/', '\\')) or re.match(r'[A-Za-z]:',
                                                        m.linkname):
        raise UnsafeArchiveError(
            f'{archive}: refusing to unpack: member {m.name!r} is a symlink '
            f'to the absolute path {m.linkname!r}')
      _resolve_inside(parts[:-1], links, m.name, archive)
      _resolve_inside(parts[:-1] + _split(m.linkname), links, m.name,
                      archive)
    else:
      _resolve_inside(parts, links, m.name, archive)
    if m.islnk():
      if m.linkname.startswith(('/', '\\')):
        raise UnsafeArchiveError(
            f'{archive}: refusing to unpack: member {m.name!r} is a hard '
            f'link to the absolute path {m.linkname!r}')
      _resolve_inside(_split(m.linkname), links, m.name, archive)


def _archive_kind(path: pathlib.Path) -> str:
  if zipfile.is_zipfile(path):
    return 'zip'
  if tarfile.is_tarfile(path):
    return 'tar'
  raise UserError(f'{path}: neither a zip nor a tar archive (a truncated or '
                  'wrong download? delete it and run again)')


def check_archive(archive_path: str | os.PathLike) -> str:
  """Checks every member of a zip or tar archive; returns 'zip' or 'tar'.

  Raises UnsafeArchiveError (naming the member) for absolute paths, '..'
  components, tar links that resolve outside the archive's root and tar
  device files or FIFOs.
  """
  path = pathlib.Path(archive_path)
  kind = _archive_kind(path)
  try:
    if kind == 'zip':
      with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
          _member_parts(info.filename, path.name)
    else:
      with tarfile.open(path, 'r:*') as tf:
        _check_tar(tf.getmembers(), path.name)
  except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
    raise UserError(f'{path}: damaged archive ({e}); delete it and run '
                    'again') from e
  return kind


def _extract(path: pathlib.Path, kind: str, into: pathlib.Path) -> None:
  if kind == 'zip':
    with zipfile.ZipFile(path) as zf:
      for info in zf.infolist():
        parts = _member_parts(info.filename, path.name)
        if not parts:
          continue
        out = into.joinpath(*parts)
        if info.is_dir():
          out.mkdir(parents=True, exist_ok=True)
          continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(out, 'wb') as dst:
          shutil.copyfileobj(src, dst, CHUNK)
  else:
    with tarfile.open(path, 'r:*') as tf:
      # The 'data' filter (Python >= 3.11.4) re-checks what _check_tar did.
      kwargs = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
      tf.extractall(into, **kwargs)


def _merge(src: pathlib.Path, dst: pathlib.Path) -> None:
  """Moves `src` to `dst`: a rename, or per entry into an existing folder."""
  if not dst.exists() and not dst.is_symlink():
    os.replace(src, dst)
  elif dst.is_dir() and src.is_dir() and not src.is_symlink():
    for child in sorted(src.iterdir()):
      _merge(child, dst / child.name)
  elif not dst.is_dir() and not src.is_dir():
    os.replace(src, dst)
  else:
    raise UserError(f'cannot unpack over {dst}: it is a '
                    f'{"folder" if dst.is_dir() else "file"} but the archive '
                    'has the other kind there; move it away and run again')


def _marker(target: pathlib.Path, archive_name: str) -> pathlib.Path:
  return target / f'.{archive_name}.unpacked'


def is_unpacked(archive_name: str, target_dir: str | os.PathLike,
                sha256: str | None = None) -> bool:
  """Whether the marker says `archive_name` (with that digest) is unpacked."""
  marker = _marker(pathlib.Path(target_dir), archive_name)
  if not marker.is_file():
    return False
  if sha256 is None:
    return True
  try:
    return json.loads(marker.read_text()).get('sha256') == sha256
  except (ValueError, AttributeError):
    return False


def safe_extract(archive_path: str | os.PathLike,
                 target_dir: str | os.PathLike, *, sha256: str | None = None,
                 force: bool = False) -> list[str]:
  """Unpacks a zip or tar(.gz/.bz2/.xz) archive into `target_dir`, safely.

  Every member is checked first (see check_archive): nothing is written when
  one is unsafe. The archive is unpacked into a temporary folder inside
  `target_dir` whose top-level entries are then renamed into place (merged
  into folders that exist already), so an interruption leaves no half
  folder; a marker file records the unpacking and a later call with the
  marker present (and the same `sha256`, when given) does nothing unless
  `force`.

  Returns:
    The top-level entries unpacked ([] when skipped).
  """
  path = pathlib.Path(archive_path)
  target = pathlib.Path(target_dir)
  if not force and is_unpacked(path.name, target, sha256):
    return []
  kind = check_archive(path)
  target.mkdir(parents=True, exist_ok=True)
  tmp = target / f'.{path.name}.unpacking'
  if tmp.exists():
    shutil.rmtree(tmp)
  try:
    tmp.mkdir()
    try:
      _extract(path, kind, tmp)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
      raise UserError(f'{path}: damaged archive ({e}); delete it and run '
                      'again') from e
    entries = sorted(p.name for p in tmp.iterdir())
    for name in entries:
      _merge(tmp / name, target / name)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  marker = _marker(target, path.name)
  tmp_marker = marker.with_name(marker.name + '.tmp')
  tmp_marker.write_text(json.dumps(
      {'archive': path.name, 'sha256': sha256, 'entries': entries,
       'time': time.strftime('%Y-%m-%dT%H:%M:%S')}, indent=1))
  os.replace(tmp_marker, marker)
  return entries


# --------------------------------------------------------------- datasets --

def _lookup(overrides: Mapping[str, str] | None, archive: Archive,
            flag: str, selected: Sequence[Archive]) -> str | None:
  if not overrides:
    return None
  for key in overrides:
    if not any(key.lower() in (a.name.lower(), a.filename.lower())
               for a in selected):
      raise UserError(
          f'{flag}: {key!r} is not one of the selected archives '
          f'({", ".join(a.name for a in selected)})')
  for key, value in overrides.items():
    if key.lower() in (archive.name.lower(), archive.filename.lower()):
      return value
  return None


def download_datasets(names: Iterable[str], dest: str | os.PathLike,
                      url_overrides: Mapping[str, str] | None = None,
                      sha256_overrides: Mapping[str, str] | None = None, *,
                      base_url: str | None = None, progress: bool = True,
                      retries: int = 3, retry_wait: float = 2.0,
                      timeout: float = 60.0,
                      delete_archives: bool = False) -> list[pathlib.Path]:
  """Fetches, verifies and unpacks the named datasets under `dest`.

  Args:
    names: dataset names (DATASETS) or archive names (ARCHIVES).
    dest: the data folder (archives, CHECKSUMS.sha256 and unpacked folders).
    url_overrides: {archive name or file name: URL} replacing registry URLs.
    sha256_overrides: {archive name or file name: hex digest} to pin.
    base_url: fetch every archive from base_url/<file name> instead.
    progress: show progress on stderr.
    retries, retry_wait, timeout: see fetch().
    delete_archives: remove each archive once unpacked.

  Returns:
    The folders the archives were unpacked into (DEST/DIV2K, DEST, ...).
  """
  archives = resolve_archives(names)
  dest = pathlib.Path(dest)
  dest.mkdir(parents=True, exist_ok=True)
  targets: list[pathlib.Path] = []
  for archive in archives:
    url = (_lookup(url_overrides, archive, '--url', archives) or
           (base_url.rstrip('/') + '/' + archive.filename if base_url else
            archive.url))
    pinned = _lookup(sha256_overrides, archive, '--sha256', archives)
    recorded = read_checksums(dest).get(archive.filename)
    if pinned:
      expected, source = _normalize_sha256(pinned), 'from --sha256'
    elif archive.sha256:
      expected, source = archive.sha256, 'from the registry'
    elif recorded:
      expected, source = recorded, f'recorded in {dest / CHECKSUMS}'
    else:
      expected, source = None, ''
    path = dest / archive.filename
    target = dest / archive.unpack_dir if archive.unpack_dir else dest
    if target not in targets:
      targets.append(target)
    if not path.exists() and is_unpacked(path.name, target, expected):
      _say(f'{archive.filename}: already unpacked in {target}')
      continue
    if progress and not path.exists():
      _say(f'{archive.filename}: downloading {url}')
    try:
      digest = fetch(url, path, expected, progress, retries=retries,
                     retry_wait=retry_wait, timeout=timeout,
                     sha256_source=source)
    except DownloadError as e:
      raise DownloadError(
          f'{e}. Download it by hand (see {archive.homepage}) and place it '
          f'at {path}, then run this again: it is verified and unpacked; or '
          f'give another address with --url={archive.name}=URL') from e
    if expected is None:
      _say(f'{archive.filename}: sha256 {digest} (no published checksum; '
           f'recorded in {dest / CHECKSUMS}, verified on later runs)')
    if recorded != digest:
      record_checksum(dest, archive.filename, digest)
    if is_unpacked(path.name, target, digest):
      _say(f'{archive.filename}: verified; already unpacked in {target}')
    else:
      _say(f'{archive.filename}: verified; unpacking into {target}')
      safe_extract(path, target, sha256=digest, force=True)
    missing = [p for p in archive.provides if not (dest / p).exists()]
    if missing:
      _say(f'warning: {archive.filename} unpacked, but '
           f'{", ".join(str(dest / p) for p in missing)} not found: the '
           'archive layout may have changed upstream; look inside '
           f'{target}')
    if delete_archives:
      path.unlink()
      _say(f'{archive.filename}: deleted (unpacked; the marker in {target} '
           'keeps it from being fetched again)')
  return targets


# --------------------------------------------------------------------- CLI --

def _parse_pairs(values: Sequence[str], flag: str, bare_pattern: str,
                 archives: Sequence[Archive]) -> dict[str, str]:
  """['NAME=VALUE' | 'VALUE'] -> {NAME: VALUE}; bare only for one archive."""
  out = {}
  for value in values:
    if re.match(bare_pattern, value):
      if len(archives) != 1:
        raise UserError(
            f'{flag}={value}: several archives are selected '
            f'({", ".join(a.name for a in archives)}); write '
            f'{flag}=ARCHIVE=VALUE')
      out[archives[0].name] = value
    elif '=' in value:
      key, val = value.split('=', 1)
      out[key] = val
    else:
      raise UserError(f'{flag}={value}: expected {flag}=ARCHIVE=VALUE')
  return out


def list_datasets() -> str:
  lines = ['datasets:']
  for name, members in DATASETS.items():
    files = ', '.join(ARCHIVES[m].filename for m in members)
    lines.append(f'  {name:12s} {files}')
  lines.append('archives:')
  for a in ARCHIVES.values():
    lines.append(f'  {a.name:26s} {a.url}  -> DEST/{a.unpack_dir}  sha256: '
                 f'{a.sha256 or "unknown (recorded on first download)"}')
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog='python -m gramjax.download',
      description='Download, verify and unpack DIV2K and the SR benchmarks.',
      epilog='datasets: ' + ', '.join(DATASETS))
  parser.add_argument('--dataset', help='comma-separated: ' +
                      ', '.join(DATASETS) + ' (or archive names)')
  parser.add_argument('--dest', default='data', help='data folder [data]')
  parser.add_argument('--url', action='append', default=[],
                      help='ARCHIVE=URL (or URL for one archive): replaces '
                      'the URL of that archive; repeatable')
  parser.add_argument('--sha256', action='append', default=[],
                      help='ARCHIVE=HEX (or HEX for one archive): pins the '
                      'expected digest; repeatable')
  parser.add_argument('--base_url', default=None,
                      help='fetch every archive from BASE_URL/<file name>')
  parser.add_argument('--retries', type=int, default=3)
  parser.add_argument('--timeout', type=float, default=60.0,
                      help='seconds without data before a retry')
  parser.add_argument('--delete_archives', action='store_true',
                      help='delete each archive once unpacked')
  parser.add_argument('--no_progress', action='store_true')
  parser.add_argument('--list', action='store_true',
                      help='list datasets and archives, then exit')
  parser.add_argument('--verbose', action='store_true',
                      help='show tracebacks')
  args = parser.parse_args(argv)
  if args.list:
    print(list_datasets())
    return 0
  try:
    if not args.dataset:
      raise UserError('--dataset is required; choose from: ' +
                      ', '.join(DATASETS))
    names = args.dataset.split(',')
    archives = resolve_archives(names)
    urls = _parse_pairs(args.url, '--url', r'[A-Za-z][A-Za-z0-9+.-]*://',
                        archives)
    sums = _parse_pairs(args.sha256, '--sha256', r'[0-9A-Fa-f]{64}$',
                        archives)
    targets = download_datasets(
        names, args.dest, urls, sums, base_url=args.base_url,
        progress=not args.no_progress, retries=args.retries,
        timeout=args.timeout, delete_archives=args.delete_archives)
  except (UserError, OSError) as e:
    if args.verbose:
      raise
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    if args.verbose:
      raise
    print('interrupted: run the same command again to resume',
          file=sys.stderr)
    return 130
  print('done: ' + ', '.join(str(t) for t in targets))
  hr = pathlib.Path(args.dest) / 'DIV2K' / 'DIV2K_train_HR'
  if hr.is_dir():
    print(f'train with --config.data.train_dir={hr}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
