"""gramjax.download against a local HTTP server on 127.0.0.1 (no internet)."""

import dataclasses
import hashlib
import http.server
import io
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from gramjax import download

REPO = pathlib.Path(__file__).resolve().parents[1]


def _png(seed: int, size: int = 48) -> bytes:
  """A small noise PNG (incompressible, so archives are a few KB)."""
  rng = np.random.default_rng(seed)
  img = Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8))
  buf = io.BytesIO()
  img.save(buf, format='PNG')
  return buf.getvalue()


def _zip(members: dict) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as zf:
    for name, data in members.items():
      zf.writestr(name, data)
  return buf.getvalue()


def _tar(members: list, mode: str = 'w:gz') -> bytes:
  """members: (name, bytes) files, or prepared TarInfo objects (links...)."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode=mode) as tf:
    for m in members:
      if isinstance(m, tarfile.TarInfo):
        tf.addfile(m)
      else:
        name, data = m
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
  info = tarfile.TarInfo(name)
  info.type = kind
  info.linkname = target
  return info


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class ServerState:
  files: dict = dataclasses.field(default_factory=dict)
  requests: list = dataclasses.field(default_factory=list)  # (path, Range)
  ignore_range: bool = False
  drop_after: int | None = None  # Bytes of body sent before hanging up...
  drops_left: int = 0            # ...on this many requests.


class _Handler(http.server.BaseHTTPRequestHandler):
  state: ServerState  # Set per server by the fixture.

  def log_message(self, *args):  # Quiet.
    pass

  def do_GET(self):  # pylint: disable=invalid-name
    st = self.server.state
    rng = self.headers.get('Range')
    st.requests.append((self.path, rng))
    data = st.files.get(self.path)
    if data is None:
      self.send_error(404, 'Not Found')
      return
    start = 0
    if rng and not st.ignore_range:
      start = int(re.fullmatch(r'bytes=(\d+)-', rng).group(1))
      if start >= len(data):
        self.send_response(416)
        self.send_header('Content-Range', f'bytes */{len(data)}')
        self.send_header('Content-Length', '0')
        self.end_headers()
        return
      self.send_response(206)
      self.send_header('Content-Range',
                       f'bytes {start}-{len(data) - 1}/{len(data)}')
    else:
      self.send_response(200)
    body = data[start:]
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    if st.drop_after is not None and st.drops_left > 0:
      st.drops_left -= 1
      self.wfile.write(body[:st.drop_after])
      self.wfile.flush()
      self.close_connection = True
      self.connection.shutdown(socket.SHUT_RDWR)
      return
    self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
  """(base URL, ServerState) of a threaded HTTP server on 127.0.0.1."""
  for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
              'all_proxy', 'ALL_PROXY'):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv('no_proxy', '127.0.0.1')
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
  httpd.daemon_threads = True
  httpd.state = ServerState()
  thread = threading.Thread(target=httpd.serve_forever, args=(0.05,),
                            daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{httpd.server_address[1]}', httpd.state
  httpd.shutdown()
  httpd.server_close()


@pytest.fixture
def div2k(server):
  """Serves fake DIV2K_train_HR.zip and DIV2K_valid_HR.zip at base/."""
  base, st = server
  pngs = {'train': [_png(1), _png(2)], 'valid': [_png(3)]}
  st.files['/DIV2K_train_HR.zip'] = _zip(
      {'DIV2K_train_HR/': b'', 'DIV2K_train_HR/0001.png': pngs['train'][0],
       'DIV2K_train_HR/0002.png': pngs['train'][1]})
  st.files['/DIV2K_valid_HR.zip'] = _zip(
      {'DIV2K_valid_HR/0801.png': pngs['valid'][0]})
  return base, st, pngs


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch):
  monkeypatch.setattr(download, 'RETRY_WAIT', 0.0)


def _dl(names, dest, base=None, **kw):
  """download_datasets with every selected archive fetched from `base`."""
  kw.setdefault('progress', False)
  archives, _ = download._resolve(names, [])
  urls = [f'{a}={base}/{os.path.basename(download.ARCHIVES[a][0])}'
          for a in archives] if base else []
  return download.download_datasets(names, dest, urls, **kw)


def _cli(*args):
  """`python -m gramjax.download ARGS` as a user runs it (no proxies)."""
  env = dict(os.environ, no_proxy='127.0.0.1', PYTHONPATH=str(REPO))
  for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
    env.pop(var, None)
  return subprocess.run([sys.executable, '-m', 'gramjax.download', *args],
                        capture_output=True, text=True, env=env, timeout=60,
                        check=False)


def test_full_download_checksum_and_layout(div2k, tmp_path):
  base, st, pngs = div2k
  dest = tmp_path / 'data'
  targets = _dl(['div2k'], dest, base)
  assert targets == [dest / 'DIV2K']
  d = dest / 'DIV2K'
  assert (d / 'DIV2K_train_HR' / '0001.png').read_bytes() == pngs['train'][0]
  assert (d / 'DIV2K_train_HR' / '0002.png').read_bytes() == pngs['train'][1]
  assert (d / 'DIV2K_valid_HR' / '0801.png').read_bytes() == pngs['valid'][0]
  # Nothing left over: no .part, no temporary unpack folders.
  assert sorted(p.name for p in dest.iterdir()) == [
      'CHECKSUMS.sha256', 'DIV2K', 'DIV2K_train_HR.zip', 'DIV2K_valid_HR.zip']
  assert sorted(p.name for p in d.iterdir()) == [
      '.DIV2K_train_HR.zip.unpacked', '.DIV2K_valid_HR.zip.unpacked',
      'DIV2K_train_HR', 'DIV2K_valid_HR']
  assert download.read_checksums(dest) == {
      'DIV2K_train_HR.zip': _sha(st.files['/DIV2K_train_HR.zip']),
      'DIV2K_valid_HR.zip': _sha(st.files['/DIV2K_valid_HR.zip'])}
  assert [p for p, _ in st.requests] == ['/DIV2K_train_HR.zip',
                                         '/DIV2K_valid_HR.zip']


def test_benchmark_tar_gz_with_url_override(server, tmp_path):
  base, st = server
  baby = _png(5)
  st.files['/mirror/bench.tar.gz'] = _tar(
      [('benchmark/Set5/HR/baby.png', baby),
       ('benchmark/Set5/LR_bicubic/X4/babyx4.png', _png(6, 12))])
  dest = tmp_path / 'data'
  (dest / 'benchmark' / 'Set14').mkdir(parents=True)  # Merged into, kept.
  download.download_datasets(  # Both are the one benchmark archive.
      ['set5', 'urban100'], dest,
      ['benchmark.tar=' + base + '/mirror/bench.tar.gz'], progress=False)
  assert (dest / 'benchmark/Set5/HR/baby.png').read_bytes() == baby
  assert (dest / 'benchmark/Set5/LR_bicubic/X4/babyx4.png').is_file()
  assert (dest / 'benchmark/Set14').is_dir()
  assert (dest / 'benchmark.tar').read_bytes() == st.files[
      '/mirror/bench.tar.gz']
  assert len(st.requests) == 1


def test_resume_after_dropped_connection(server, tmp_path):
  base, st = server
  data = _zip({'DIV2K_train_HR/0001.png': _png(7, 64)})
  assert len(data) > 10000
  st.files['/a.zip'] = data
  st.drop_after, st.drops_left = 4000, 1
  out = tmp_path / 'a.zip'
  with pytest.raises(download.UserError, match=re.escape(base + '/a.zip')):
    download.fetch(base + '/a.zip', out, progress=False, retries=0)
  part = tmp_path / 'a.zip.part'
  assert part.stat().st_size == 4000 and not out.exists()
  digest = download.fetch(base + '/a.zip', out, _sha(data), progress=False,
                          retries=0)
  assert st.requests == [('/a.zip', None), ('/a.zip', 'bytes=4000-')]
  assert out.read_bytes() == data and digest == _sha(data)
  assert not part.exists()


def test_retry_resumes_within_one_call(server, tmp_path):
  base, st = server
  data = os.urandom(50000)
  st.files['/b.bin'] = data
  st.drop_after, st.drops_left = 12345, 2
  out = tmp_path / 'b.bin'
  download.fetch(base + '/b.bin', out, _sha(data), progress=False, retries=3)
  assert [r for _, r in st.requests] == [None, 'bytes=12345-',
                                         'bytes=24690-']
  assert out.read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, capsys):
  base, st = server
  data = os.urandom(30000)
  st.files['/c.bin'] = data
  st.ignore_range = True
  out = tmp_path / 'c.bin'
  (tmp_path / 'c.bin.part').write_bytes(b'\0' * 5000)  # Wrong bytes.
  digest = download.fetch(base + '/c.bin', out, progress=False, retries=0)
  assert st.requests == [('/c.bin', 'bytes=5000-')]
  assert out.read_bytes() == data and digest == _sha(data)
  assert 'ignored the Range request' in capsys.readouterr().err


def test_complete_part_and_416(server, tmp_path):
  base, st = server
  data = os.urandom(3000)
  st.files['/d.bin'] = data
  (tmp_path / 'd.bin.part').write_bytes(data)
  out = tmp_path / 'd.bin'
  assert download.fetch(base + '/d.bin', out, _sha(data),
                        progress=False) == _sha(data)
  assert st.requests == [('/d.bin', 'bytes=3000-')]  # Answered with 416.
  assert out.read_bytes() == data


def test_checksum_mismatch_moves_file_aside(div2k, tmp_path):
  base, st, _ = div2k
  dest = tmp_path / 'data'
  dest.mkdir()
  wrong = 'ab' * 32  # Pinned by a line in CHECKSUMS.sha256.
  pinned = f'{wrong}  DIV2K_train_HR.zip\n'
  (dest / 'CHECKSUMS.sha256').write_text(pinned)
  actual = _sha(st.files['/DIV2K_train_HR.zip'])
  with pytest.raises(download.UserError, match='sha256 mismatch') as e:
    _dl(['div2k'], dest, base)
  msg = str(e.value)
  assert 'DIV2K_train_HR.zip' in msg and wrong in msg and actual in msg
  assert (dest / 'DIV2K_train_HR.zip.corrupt').read_bytes() == st.files[
      '/DIV2K_train_HR.zip']
  assert not (dest / 'DIV2K_train_HR.zip').exists()
  assert not (dest / 'DIV2K_train_HR.zip.part').exists()
  assert not (dest / 'DIV2K').exists()  # Nothing unpacked.
  assert (dest / 'CHECKSUMS.sha256').read_text() == pinned  # Not replaced.


def test_unknown_checksum_recorded_then_tampering_detected(div2k, tmp_path,
                                                           capsys):
  base, st, _ = div2k
  dest = tmp_path / 'data'
  _dl(['DIV2K_valid_HR'], dest, base)
  good = _sha(st.files['/DIV2K_valid_HR.zip'])
  assert (dest / 'CHECKSUMS.sha256').read_text() == (
      f'{good}  DIV2K_valid_HR.zip\n')
  assert good in capsys.readouterr().err  # Printed for the user to pin.
  # Tamper with the archive: the next run verifies it against the record.
  archive = dest / 'DIV2K_valid_HR.zip'
  archive.write_bytes(archive.read_bytes() + b'x')
  bad = _sha(archive.read_bytes())
  with pytest.raises(download.UserError, match='sha256 mismatch') as e:
    _dl(['DIV2K_valid_HR'], dest, base)
  assert good in str(e.value) and bad in str(e.value)
  assert 'CHECKSUMS.sha256' in str(e.value)
  assert (dest / 'DIV2K_valid_HR.zip.corrupt').exists()
  assert not archive.exists()
  # The unpacked folder is still marked done, so that is all: no request.
  _dl(['DIV2K_valid_HR'], dest, base)
  assert len(st.requests) == 1
  # Without it, a fresh copy is downloaded, verified against the record.
  shutil.rmtree(dest / 'DIV2K')
  _dl(['DIV2K_valid_HR'], dest, base)
  assert archive.read_bytes() == st.files['/DIV2K_valid_HR.zip']
  assert (dest / 'DIV2K/DIV2K_valid_HR/0801.png').is_file()
  assert len(st.requests) == 2


def test_verified_archive_is_not_downloaded_again(div2k, tmp_path, capsys):
  base, st, _ = div2k
  dest = tmp_path / 'data'
  _dl(['div2k'], dest, base)
  assert len(st.requests) == 2
  png = dest / 'DIV2K/DIV2K_train_HR/0001.png'
  png.write_bytes(b'edited')  # A skipped unpack leaves it alone.
  _dl(['div2k'], dest, base)
  assert len(st.requests) == 2
  assert png.read_bytes() == b'edited'
  assert 'already unpacked' in capsys.readouterr().err
  # With the archives deleted after unpacking, the marker still says done.
  _dl(['div2k'], dest, base, delete_archives=True)
  assert not (dest / 'DIV2K_train_HR.zip').exists()
  _dl(['div2k'], dest, base)
  assert len(st.requests) == 2
  # A file placed by hand is verified and unpacked without any request.
  hand = tmp_path / 'hand'
  hand.mkdir()
  (hand / 'DIV2K_valid_HR.zip').write_bytes(st.files['/DIV2K_valid_HR.zip'])
  _dl(['DIV2K_valid_HR'], hand, base)
  assert (hand / 'DIV2K/DIV2K_valid_HR/0801.png').is_file()
  assert len(st.requests) == 2


def _evil(case: str, outside: pathlib.Path):
  """(archive bytes, file extension, the member that must be refused)."""
  ok = ('ok/a.txt', b'a')  # A harmless member first: not extracted either.
  absolute = str(outside / 'evil.txt')
  return {
      'zip_dotdot': (_zip({'ok/a.txt': b'a', '../evil.txt': b'e'}), 'zip',
                     '../evil.txt'),
      'zip_absolute': (_zip({'ok/a.txt': b'a', absolute: b'e'}), 'zip',
                       absolute),
      'tar_dotdot': (_tar([ok, ('../x', b'e')]), 'tar.gz', '../x'),
      'tar_symlink_out': (_tar([ok, _link('ok/link', '../../outside'),
                                ('ok/link/evil.txt', b'e')]), 'tar.gz',
                          'ok/link'),
      'tar_symlink_absolute': (_tar([ok, _link('ok/link', str(outside))],
                                    'w'), 'tar', 'ok/link'),
      # Each link alone looks inside; chained, l2 -> l/.. is the parent.
      'tar_symlink_chain': (_tar([ok, _link('l', '.'), _link('l2', 'l/..'),
                                  ('l2/evil.txt', b'e')], 'w'), 'tar', 'l2'),
      'tar_hardlink_out': (_tar([ok, _link('ok/h', '../../x',
                                           tarfile.LNKTYPE)], 'w'), 'tar',
                           'ok/h'),
      'tar_device': (_tar([ok, _link('ok/dev', '', tarfile.CHRTYPE)], 'w'),
                     'tar', 'ok/dev'),
  }[case]


@pytest.mark.parametrize('target_exists', [False, True])
@pytest.mark.parametrize('case', [
    'zip_dotdot', 'zip_absolute', 'tar_dotdot', 'tar_symlink_out',
    'tar_symlink_absolute', 'tar_symlink_chain', 'tar_hardlink_out',
    'tar_device'])
def test_unsafe_archives_are_refused_before_writing(case, target_exists,
                                                    tmp_path):
  """Zips are checked member by member first; tarfile's 'data' filter may
  refuse a tar member only while extracting, which goes to a temporary
  folder: either way nothing lands in the target."""
  outside = tmp_path / 'outside'
  data, ext, member = _evil(case, outside)
  archive = tmp_path / 'box' / f'evil.{ext}'
  archive.parent.mkdir()
  archive.write_bytes(data)
  if ext == 'zip':  # The archive really holds the unsafe name.
    assert member in zipfile.ZipFile(archive).namelist()
  target = tmp_path / 'box' / 'target'
  before = ['box', archive.name]
  if target_exists:
    target.mkdir()
    (target / 'keep.txt').write_text('k')
    before += ['keep.txt', 'target']
  with pytest.raises(download.UserError, match='refusing to unpack') as e:
    download.safe_extract(archive, target)
  assert repr(member) in str(e.value)
  assert target.exists() == target_exists  # Not even the good 'ok/a.txt'.
  assert sorted(p.name for p in tmp_path.rglob('*')) == sorted(before)


def test_safe_links_inside_are_unpacked(tmp_path):
  archive = tmp_path / 'ok.tar'
  archive.write_bytes(_tar([('d/a.txt', b'a'), _link('d/l', 'a.txt'),
                            _link('d/h', 'd/a.txt', tarfile.LNKTYPE)], 'w'))
  assert download.safe_extract(archive, tmp_path / 't') == ['d']
  assert (tmp_path / 't/d/l').read_bytes() == b'a'
  assert (tmp_path / 't/d/h').read_bytes() == b'a'
  assert download.safe_extract(archive, tmp_path / 't') == []  # Marker.


def test_http_404_is_one_clear_line(server, tmp_path):
  base, st = server
  with pytest.raises(download.UserError,
                     match=re.escape(f'{base}/nope.zip') + '.*404'):
    download.fetch(base + '/nope.zip', tmp_path / 'nope.zip', progress=False)
  assert len(st.requests) == 1  # No retries on a 404.
  url = base + '/missing/benchmark.tar'
  dest = tmp_path / 'data'
  proc = _cli('--dataset=benchmark', f'--dest={dest}',
              f'--url=benchmark={url}')
  assert proc.returncode == 2
  assert 'Traceback' not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if 'error' in l.lower()]
  assert len(errors) == 1 and errors[0].startswith('error: '), proc.stderr
  assert url in errors[0] and '404' in errors[0]
  assert str(dest / 'benchmark.tar') in errors[0]  # Where to put it by hand.
  assert not (dest / 'benchmark.tar.part').exists()


def test_network_error_names_url(tmp_path):
  with socket.socket() as s:  # A port with nobody listening.
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  url = f'http://127.0.0.1:{port}/x.zip'
  proc = _cli(f'--dest={tmp_path}', '--dataset=DIV2K_valid_HR',
              f'--url=DIV2K_valid_HR={url}', '--retries=0')
  assert proc.returncode == 2
  assert f'error: cannot download {url}' in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_unknown_dataset_lists_choices(tmp_path):
  with pytest.raises(download.UserError, match='div2k, div2k_lr_x4'):
    download.download_datasets(['div3k'], tmp_path)
  proc = _cli('--dataset=div2k,div3k', f'--dest={tmp_path}')
  assert proc.returncode == 2
  assert "error: unknown dataset 'div3k'" in proc.stderr
  for name in ('div2k', 'div2k_lr_x4', 'benchmark', 'set5', 'urban100'):
    assert name in proc.stderr
  # --url must name one of the selected archives.
  for bad in ('http://127.0.0.1:1/x.zip', 'benchmark=http://127.0.0.1:1/x'):
    proc = _cli('--dataset=div2k', f'--dest={tmp_path}', f'--url={bad}')
    assert proc.returncode == 2 and 'ARCHIVE=' in proc.stderr
  assert not list(tmp_path.iterdir())  # Nothing was fetched.


def test_help_and_list_follow_the_shared_conventions():
  proc = _cli('--help')  # absl's --help exits with status 1.
  for flag in ('dataset', 'dest', 'url', 'retries', 'list', 'verbose'):
    assert re.search(rf'^  --(\[no\])?{flag}:', proc.stdout, re.M), flag
  proc = _cli('--list')
  assert proc.returncode == 0 and 'benchmark.tar' in proc.stdout
  assert 'DIV2K_train_LR_bicubic_X4.zip -> DEST/DIV2K' in proc.stdout


def test_progress_lines_when_not_a_tty(server, tmp_path, capsys):
  base, st = server
  data = os.urandom(3 << 20)
  st.files['/e.bin'] = data
  st.drop_after, st.drops_left = 1 << 20, 1
  out = tmp_path / 'e.bin'
  download.fetch(base + '/e.bin', out, _sha(data), retries=1)
  err = capsys.readouterr().err
  assert '\r' not in err
  lines = [l for l in err.splitlines() if l.startswith('e.bin: ')]
  # Where the dropped attempt stopped; the resumed one starts from that MiB
  # (counted as done, not in its rate) and ends complete.
  assert any(re.match(r'e\.bin: 1\.00M/3\.00M \(33%\) \S+B/s ETA ', l)
             for l in lines), err
  assert re.match(r'e\.bin: 3\.00M/3\.00M \(100%\) \S+B/s ETA 00:00$',
                  lines[-1]), lines[-1]
