"""gramjax.core.progress: tqdm set up for terminals and for logs."""

import io

import pytest

from gramjax.core import progress


class _Tty(io.StringIO):

  def isatty(self):
    return True


def test_a_log_gets_one_line_per_count_with_rate_and_eta():
  stream = io.StringIO()
  with progress.Progress(4, 'decoding', stream=stream, interval=0.0) as p:
    for _ in range(4):
      p.update()
  lines = stream.getvalue().splitlines()
  assert [l.split(' (')[0] for l in lines] == [
      f'decoding: {i}/4' for i in range(5)]      # The close adds no repeat.
  assert all('\r' not in l and 'ETA' in l and 'img/s' in l for l in lines)
  assert lines[-1].startswith('decoding: 4/4 (100%)')


def test_a_description_with_spaces_still_shows_every_count():
  stream = io.StringIO()
  with progress.Progress(2, 'preparing a b', stream=stream,
                         interval=0.0) as p:
    p.update()
    p.update()
  assert [l.split(' (')[0] for l in stream.getvalue().splitlines()] == [
      'preparing a b: 0/2', 'preparing a b: 1/2', 'preparing a b: 2/2']


def test_a_log_line_at_most_every_interval_and_the_last_state_on_close():
  stream = io.StringIO()
  with progress.Progress(1000, 'x', unit='tile', stream=stream,
                         interval=3600.0) as p:
    for _ in range(999):
      p.update()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 2, lines     # The start, then the close.
  assert lines[-1].startswith('x: 999/1000 (100%)') and 'tile/s' in lines[-1]


def test_bytes_are_shown_in_binary_units_from_the_resumed_part():
  stream = io.StringIO()
  mib = progress.MIB
  p = progress.Progress(8 * mib, 'a.zip', unit='B', initial=2 * mib,
                        stream=stream, interval=0.0)
  p.update(2 * mib)
  p.close()
  lines = stream.getvalue().splitlines()
  assert lines[0].startswith('a.zip: 2.00M/8.00M (25%)')
  assert lines[-1].startswith('a.zip: 4.00M/8.00M (50%)') and 'B/s' in lines[-1]


def test_unknown_total_has_no_percentage_or_eta():
  stream = io.StringIO()
  p = progress.Progress(None, 'b.tar', unit='B', stream=stream, interval=0.0)
  p.update(3 * progress.MIB // 2)
  p.close()
  last = stream.getvalue().splitlines()[-1]
  assert last.startswith('b.tar: 1.50M ') and '%' not in last
  assert 'ETA' not in last


def test_terminal_redraws_one_line():
  stream = _Tty()
  with progress.Progress(3, 'p', stream=stream, interval=0.0) as p:
    for _ in range(3):
      p.update()
  out = stream.getvalue()
  assert out.count('\r') >= 2 and out.count('\n') == 1
  assert '3/3' in out.split('\r')[-1]


def test_disable_writes_nothing():
  for stream in (_Tty(), io.StringIO()):
    with progress.Progress(3, 'p', stream=stream, disable=True) as p:
      p.update(2)
    assert stream.getvalue() == ''


@pytest.mark.parametrize('seconds, text', [
    (0, '00:00'), (59.9, '00:59'), (61, '01:01'), (3600 + 120, '1:02:00'),
    (float('nan'), '?'), (float('inf'), '?')])
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text
