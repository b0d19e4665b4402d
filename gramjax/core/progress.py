"""Progress with rate and ETA for long loops and downloads: tqdm, set up
once for the package. On a terminal one redrawn bar; in a log or CI (no
terminal) a plain line at most every ``interval`` seconds, and the last
state on ``close``. Output goes to stderr."""

from __future__ import annotations

import math
import sys

import tqdm

MIB = 1 << 20
# In a log: one line per update, no bar characters.
_LOG_FORMAT = '{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) {rate_fmt} ETA {remaining}'
_LOG_FORMAT_NO_TOTAL = '{desc}: {n_fmt} {rate_fmt}'


def format_duration(seconds: float) -> str:
  """tqdm's ``[H:]MM:SS``; '?' when unknown."""
  if not math.isfinite(seconds):
    return '?'
  return tqdm.tqdm.format_interval(seconds)


class _Lines:
  """A stream for tqdm outside a terminal: each redraw becomes a line (the
  redraw of a count already shown, as on close, does not)."""

  def __init__(self, stream):
    self.stream, self.shown = stream, None

  def write(self, text: str) -> None:
    text = text.replace('\r', '').rstrip()
    # The text before the percentage (or the rate): desc and count.
    count = text.rpartition(' (')[0] or text.rpartition(' ')[0]
    if text and count != self.shown:
      self.shown = count
      self.stream.write(text + '\n')

  def flush(self) -> None:
    self.stream.flush()


def Progress(total: int | None, desc: str, *, unit: str = 'img',  # pylint: disable=invalid-name
             interval: float = 5.0, stream=None, initial: int = 0,
             disable: bool = False) -> tqdm.tqdm:
  """``with Progress(n, 'decoding') as p: ... p.update()``: a tqdm bar.

  ``unit='B'`` counts bytes (shown in KiB/MiB); ``initial`` (e.g. the bytes
  of a resumed download) counts as done but not in the rate; ``total`` may
  be None (unknown: no percentage or ETA); ``disable`` shows nothing.
  """
  stream = stream or sys.stderr
  tty = hasattr(stream, 'isatty') and stream.isatty()
  options = dict(total=total, desc=desc, unit=unit, initial=initial,
                 disable=disable, mininterval=0.2 if tty else interval,
                 miniters=1, smoothing=0, leave=True)
  if unit == 'B':
    options.update(unit_scale=True, unit_divisor=1024)
  if tty:
    return tqdm.tqdm(file=stream, dynamic_ncols=True, **options)
  return tqdm.tqdm(file=_Lines(stream), ascii=True, bar_format=(
      _LOG_FORMAT if total is not None else _LOG_FORMAT_NO_TOTAL), **options)
