"""gramjax.core.progress: counts and bytes, terminals and logs, on a fake clock."""

import io

import pytest

from gramjax.core import progress


class _Tty(io.StringIO):

  def isatty(self):
    return True


@pytest.fixture
def clock(monkeypatch):
  """A settable time.monotonic for gramjax.core.progress: clock[0] = seconds."""
  now = [100.0]
  monkeypatch.setattr(progress.time, 'monotonic', lambda: now[0])
  return now


def test_counts_log_a_line_at_most_every_interval(clock):
  stream = io.StringIO()
  with progress.Progress(10, 'decoding', stream=stream) as p:
    clock[0] += 1.0
    p.update(2)  # 1 s after the start: too early for a line.
    clock[0] += 4.0
    p.update(3)  # 5 s: a line.
    clock[0] += 1.0
    p.update(1)  # Not yet; shown by close().
  lines = stream.getvalue().splitlines()
  assert lines == ['decoding: 5/10 (50%) 1.0 img/s ETA 5s',
                   'decoding: 6/10 (60%) 1.0 img/s ETA 4s']


def test_reaching_the_total_is_shown_once(clock):
  stream = io.StringIO()
  with progress.Progress(4, 'x', unit='tile', stream=stream) as p:
    clock[0] += 2.0
    p.update(4)
  assert stream.getvalue() == 'x: 4/4 (100%) 2.0 tile/s ETA 0s\n'


def test_bytes_show_mib_and_rate_without_the_resumed_part(clock):
  stream = io.StringIO()
  mib = progress.MIB
  p = progress.Progress(8 * mib, 'a.zip', unit='B', initial=2 * mib,
                        stream=stream, interval=0.0)
  clock[0] += 2.0
  p.update(2 * mib)  # 2 MiB in 2 s; 4 MiB left.
  p.close()
  assert stream.getvalue() == (
      'a.zip: 4.0/8.0 MiB (50%) 1.00 MiB/s ETA 4s\n')


def test_unknown_total_has_no_percentage_or_eta(clock):
  stream = io.StringIO()
  p = progress.Progress(None, 'b.tar', unit='B', stream=stream, interval=0.0)
  clock[0] += 1.0
  p.update(3 * progress.MIB // 2)
  assert stream.getvalue() == 'b.tar: 1.5 MiB 1.50 MiB/s\n'
  p = progress.Progress(None, 'n', stream=io.StringIO(), interval=0.0)
  clock[0] += 1.0
  p.update(7)
  assert p.line() == 'n: 7 7.0 img/s'


def test_terminal_redraws_one_line(clock):
  stream = _Tty()
  with progress.Progress(3, 'p', stream=stream) as p:
    for _ in range(3):
      clock[0] += 1.0
      p.update()
  out = stream.getvalue()
  assert out.count('\r') == 3 and out.endswith('\n') and out.count('\n') == 1
  assert out.split('\r')[-1].startswith('p: 3/3 (100%) 1.0 img/s ETA 0s')


def test_disable_writes_nothing(clock):
  stream = _Tty()
  with progress.Progress(3, 'p', stream=stream, disable=True) as p:
    clock[0] += 10.0
    p.update(2)
  assert stream.getvalue() == ''


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (59.9, '59s'), (61, '1m01s'), (3600 + 120, '1h02m'),
    (2 * 86400 + 3 * 3600, '2d03h'), (float('nan'), '?'),
    (float('inf'), '?')])
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text
