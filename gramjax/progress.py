"""A dependency-free progress line with rate and ETA, for long loops."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
  """Compact h/m/s, '?' when unknown."""
  if seconds != seconds or seconds in (float('inf'), float('-inf')):
    return '?'
  seconds = int(seconds)
  d, rem = divmod(seconds, 86400)
  h, rem = divmod(rem, 3600)
  m, s = divmod(rem, 60)
  if d:
    return f'{d}d{h:02d}h'
  if h:
    return f'{h}h{m:02d}m'
  return f'{m}m{s:02d}s' if m else f'{s}s'


class Progress:
  """``with Progress(n, 'decoding') as p: ... p.update()``.

  On a terminal it redraws one line; otherwise (logs, CI) it prints a line at
  most every ``interval`` seconds. Output goes to stderr.
  """

  def __init__(self, total: int, desc: str, *, unit: str = 'img',
               interval: float = 5.0, stream=None):
    self.total, self.desc, self.unit = total, desc, unit
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.interval = 0.2 if self.tty else interval
    self.count = 0
    self.start = self.last = time.time()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def line(self) -> str:
    elapsed = max(time.time() - self.start, 1e-9)
    rate = self.count / elapsed
    eta = (self.total - self.count) / rate if rate else float('nan')
    pct = 100.0 * self.count / self.total if self.total else 100.0
    return (f'{self.desc}: {self.count}/{self.total} ({pct:.0f}%) '
            f'{rate:.1f} {self.unit}/s ETA {format_duration(eta)}')

  def update(self, n: int = 1) -> None:
    self.count += n
    now = time.time()
    if now - self.last >= self.interval or self.count == self.total:
      self.last = now
      self._emit()

  def _emit(self) -> None:
    if self.tty:
      self.stream.write('\r' + self.line() + ' ' * 4)
    else:
      self.stream.write(self.line() + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self.tty:
      self.stream.write('\n')
      self.stream.flush()
