"""A dependency-free progress line with rate and ETA, for long loops and
downloads."""

from __future__ import annotations

import sys
import time

MIB = 1 << 20


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
  most every ``interval`` seconds, and the last state on ``close``. Output
  goes to stderr. ``unit='B'`` counts bytes and shows MiB and MiB/s;
  ``initial`` (e.g. the bytes of a resumed download) is counted as done but
  not in the rate. ``total`` may be None (unknown): no percentage or ETA.
  ``disable`` shows nothing.
  """

  def __init__(self, total: int | None, desc: str, *, unit: str = 'img',
               interval: float = 5.0, stream=None, initial: int = 0,
               disable: bool = False):
    self.total, self.desc, self.unit = total, desc, unit
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.interval = 0.2 if self.tty else interval
    self.disable = disable
    self.count = self.initial = self.shown = initial
    self.start = self.last = time.monotonic()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def line(self) -> str:
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = (self.count - self.initial) / elapsed
    left = (self.total - self.count if self.total is not None
            else float('nan'))
    eta = left / rate if rate else float('nan')
    if self.unit == 'B':
      done = f'{self.count / MIB:.1f}'
      if self.total is not None:
        done += f'/{self.total / MIB:.1f}'
      done, speed = f'{done} MiB', f'{rate / MIB:.2f} MiB/s'
    else:
      done = str(self.count) + ('' if self.total is None else
                                f'/{self.total}')
      speed = f'{rate:.1f} {self.unit}/s'
    if self.total is None:
      return f'{self.desc}: {done} {speed}'
    pct = 100.0 * self.count / self.total if self.total else 100.0
    return (f'{self.desc}: {done} ({pct:.0f}%) {speed} '
            f'ETA {format_duration(eta)}')

  def update(self, n: int = 1) -> None:
    self.count += n
    now = time.monotonic()
    if now - self.last >= self.interval or self.count == self.total:
      self.last = now
      self._emit()

  def _emit(self) -> None:
    self.shown = self.count
    if self.disable:
      return
    if self.tty:
      self.stream.write('\r' + self.line() + ' ' * 4)
    else:
      self.stream.write(self.line() + '\n')
    self.stream.flush()

  def close(self) -> None:
    """Shows the last state (if not shown yet); ends the line on a tty."""
    if self.count != self.shown:
      self._emit()
    if self.tty and not self.disable:
      self.stream.write('\n')
      self.stream.flush()
