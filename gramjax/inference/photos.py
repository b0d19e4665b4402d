"""Super-resolving image files on disk, one file at a time.

The library behind ``python -m gramjax.predict`` (whose docstring documents
the outputs): with the inputs listed and read by ``inference.inputs``
(re-exported here), run an ``inference.Predictor`` strip by strip and write
``<stem>_sr.png``, ``<stem>_uncertainty.png`` and optionally
``<stem>_log_var.npy``, each renamed into place only once all are complete
(so a file whose outputs all exist is done: ``split_done`` skips it when a
run goes on after an interruption).

    jobs = photos.plan_outputs(photos.list_inputs('in/')[0], out)
    results, failures = photos.predict_all(predictor, jobs, out)
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
import traceback
from typing import Callable, Sequence

import numpy as np

from gramjax.inference import predictor as inference
from gramjax.core import pixels
from gramjax.core import progress
from gramjax.core import visualize
from gramjax.core.errors import UserError
# Re-exported: the inputs' side, as ``photos.<name>``.
from gramjax.inference.inputs import (  # noqa: F401
    IMAGE_SUFFIXES, LOG_VAR_SUFFIX, OUTPUT_SUFFIXES, SR_SUFFIX,
    UNCERTAINTY_SUFFIX, Job, LoadedImage, Say, list_inputs, plan_outputs,
    read_image, show, split_done)

# ---------------------------------------------------------------- outputs --

def _open_npy(path: pathlib.Path, shape):
  """An open file holding the header of a float32 C-order .npy of ``shape``:
  write the rows in order after it (streamed, no memmap)."""
  f = open(path, 'wb')
  np.lib.format.write_array_header_1_0(f, {
      'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
      'fortran_order': False, 'shape': tuple(int(d) for d in shape)})
  return f


@dataclasses.dataclass(frozen=True)
class Display:
  """How the uncertainty is shown; the ``_log_var.npy`` is always the
  model's raw log-variance. ``sigma_scale``: the sigma map multiplied by
  it (a sigma-scaling recalibration, ``sigma_label`` says so);
  ``interval_lambda``: also the half-width ``lambda * sigma`` of a
  conformal interval (raw sigma), as a map and (with the .npy) per value,
  labelled ``interval_label``."""
  sigma_scale: float = 1.0
  sigma_label: str = "raw sigma (the model's log-variance)"
  interval_lambda: float | None = None
  interval_label: str = ''

  @classmethod
  def of(cls, recal) -> 'Display':
    """What the maps show under a stored calibration (None: raw sigma);
    an isotonic one has no single sigma to draw (``ValueError``)."""
    if recal is None:
      return cls()
    if recal.interval is not None:
      return cls(interval_lambda=recal.interval.lam['rgb'],
                 interval_label=recal.describe())
    if recal.method != 'sigma_scaling':
      raise ValueError(f'{recal.method}: no single sigma to draw')
    s = recal.values['rgb'].scale
    return cls(sigma_scale=s, sigma_label=(
        f'sigma x {s:.4g}, {recal.describe()}; the .npy holds the raw '
        'log-variance'))


@dataclasses.dataclass
class Result:
  """What ``predict_image`` wrote for one input."""
  path: pathlib.Path
  outputs: dict[str, pathlib.Path]    # By role (``Job.outputs``).
  lr_size: tuple[int, int]       # (width, height) of the input, upright.
  sr_size: tuple[int, int]       # (width, height) of the outputs.
  grey: bool
  sigma_max: float               # Top of the colour scale, grey levels.
  seconds: float
  interval_max: float | None = None   # Top of the interval map's scale.

  @property
  def sr(self) -> pathlib.Path:
    return self.outputs['sr']

  @property
  def uncertainty(self) -> pathlib.Path:
    return self.outputs['uncertainty']

  @property
  def log_var(self) -> pathlib.Path | None:
    return self.outputs.get('log_var')

  def line(self) -> str:
    """One line for the user: input -> outputs, sizes, the colour scale."""
    (w, h), (sw, sh) = self.lr_size, self.sr_size
    npy = f', {self.log_var.name}' if self.log_var else ''
    interval = (f', {self.outputs["interval"].name} (0-'
                f'{self.interval_max:.3g} grey levels)'
                if 'interval' in self.outputs else '')
    return (f'{self.path} ({w}x{h}) -> {self.sr.name} ({sw}x{sh}'
            f'{", grey" if self.grey else ""}), {self.uncertainty.name} '
            f'(0-{self.sigma_max:.3g} grey levels){interval}{npy}')


def _save_map(path, values, vmax, colour_bar, label, text):
  """A colour-mapped map of ``values`` (grey levels) from 0 to ``vmax``."""
  rgb = visualize.colormap_rows(values, vmax)
  if colour_bar:
    rgb = visualize.add_colorbar(rgb, vmax, label)
  visualize.save_png(path, rgb, 'RGB', text)


def _write_maps(tmps, sigma, display: Display, sigma_max, colour_bar
                ) -> tuple[float, float | None]:
  """The sigma map and (with an interval) the half-width map from the raw
  sigma in grey levels; returns the tops of their colour scales."""
  shown = (sigma if display.sigma_scale == 1.0       # No copy for raw.
           else sigma * np.float32(display.sigma_scale))
  vmax = float(sigma_max) if sigma_max else visualize.robust_vmax(shown)
  _save_map(tmps['uncertainty'], shown, vmax, colour_bar,
            visualize.SIGMA_LABEL, {
                'holds': display.sigma_label,
                'sigma_max_grey': f'{vmax:.6g}',
                'sigma_units': 'grey levels [0,255]'})
  if 'interval' not in tmps:
    return vmax, None
  half = sigma * np.float32(display.interval_lambda)
  imax = visualize.robust_vmax(half)
  _save_map(tmps['interval'], half, imax, colour_bar,
            'interval half-width (grey levels)', {
                'holds': f'{display.interval_label}: half-width lambda x '
                         "sigma (sigma: root of the pixel's channel-mean "
                         'variance)',
                'halfwidth_max_grey': f'{imax:.6g}'})
  return vmax, imax


def predict_image(predictor: inference.Predictor, job: Job,
                  outdir: pathlib.Path, *, tile: int = 128,
                  sigma_max: float | None = None, log_var: bool = True,
                  say: Say = show, tile_progress: bool = False,
                  display: Display = Display(), colour_bar: bool = True
                  ) -> Result:
  """Super-resolves one file and writes its outputs (module doc; the .npy
  files only with ``log_var``; each map with its colour bar in a strip
  below it, or without with ``colour_bar=False``). They appear only when
  all are complete (written under a temporary name, then renamed).
  ``display``: what the maps show. ``tile_progress``: a progress bar over
  the tiles of an image of more than 8. Raises ``UserError`` naming the
  file."""
  start = time.time()
  image = read_image(job.path)
  for note in image.notes:
    say(f'note: {job.path}: {note}')
  if image.alpha:
    say(f'note: {job.path}: alpha channel (transparency) dropped; the SR is '
        f'{"greyscale" if image.grey else "RGB"}')
  h, w, _ = image.pixels.shape
  finals = job.outputs(outdir, log_var, display.interval_lambda is not None)
  tmps = {k: p.with_name(f'.{p.name}.partial') for k, p in finals.items()}
  n_tiles = inference.count_tiles((h, w), tile)
  bar = progress.Progress(n_tiles, job.path.name, unit='tile',
                          disable=not tile_progress or n_tiles <= 8)
  try:
    sr, sigma = _run(predictor, image, tile, tmps, display, bar.update)
    visualize.save_png(tmps['sr'], sr, 'L' if image.grey else 'RGB')
    del sr
    vmax, imax = _write_maps(tmps, sigma, display, sigma_max, colour_bar)
    del sigma
    for role, tmp in tmps.items():
      os.replace(tmp, finals[role])
  except OSError as e:
    raise UserError(f'{job.path}: cannot write the outputs to {outdir} '
                    f'({e})') from e
  finally:
    bar.close()
    for tmp in tmps.values():
      try:
        tmp.unlink()
      except OSError:
        pass
  s = predictor.scale
  return Result(job.path, finals, (w, h), (w * s, h * s), image.grey, vmax,
                time.time() - start, imax)


def _run(predictor: inference.Predictor, image: LoadedImage, tile: int,
         tmps: dict[str, pathlib.Path], display: Display,
         on_tile: Callable[[int], None]) -> tuple[np.ndarray, np.ndarray]:
  """The model over one image, strip by strip: (SR uint8, raw sigma in
  grey levels), streaming the raw log sigma^2 to ``tmps['log_var']`` and
  the interval's half-widths to ``tmps['interval_npy']`` when planned."""
  h, w, c = image.pixels.shape
  hr_shape = (h * predictor.scale, w * predictor.scale)
  sr = np.empty(hr_shape + (() if image.grey else (c,)), np.uint8)
  sigma = np.empty(hr_shape, np.float32)
  npys = {k: _open_npy(tmps[k], hr_shape + (c,))
          for k in ('log_var', 'interval_npy') if k in tmps}
  try:
    lr01 = image.pixels.astype(np.float32) / 255.0
    for r0, r1, mean, log_var in predictor.strips(lr01, tile, on_tile):
      sr[r0:r1] = pixels.mean_to_uint8(mean, grey=image.grey)
      sigma[r0:r1] = pixels.sigma_grey(log_var)
      if 'log_var' in npys:
        npys['log_var'].write(np.ascontiguousarray(log_var, np.float32).data)
      if 'interval_npy' in npys:
        half = (np.float32(display.interval_lambda * pixels.GREY_PER_UNIT)
                * np.exp(np.float32(0.5) * log_var))
        npys['interval_npy'].write(np.ascontiguousarray(half,
                                                        np.float32).data)
  finally:
    for f in npys.values():
      f.close()
  return sr, sigma


def _error_line(path: pathlib.Path, e: Exception, tile: int) -> str:
  """The one ``error:`` line for a file that failed with ``e``."""
  if isinstance(e, UserError):
    line = f'error: {e}'
  elif isinstance(e, MemoryError):
    line = (f'error: {path}: out of memory (try smaller tiles, e.g. '
            f'{max(tile // 2, 16)} pixels)')
  else:
    line = (f'error: {path}: {type(e).__name__}: {e} (verbose mode shows '
            'the traceback)')
  return ' '.join(line.split())   # Strictly one line.


def predict_all(predictor: inference.Predictor, jobs: Sequence[Job],
                outdir: pathlib.Path, *, tile: int = 128,
                sigma_max: float | None = None, log_var: bool = True,
                verbose: bool = False, show_progress: bool = True,
                say: Say = show,
                on_result: Callable[[Result], None] | None = None,
                display: Display = Display(), colour_bar: bool = True
                ) -> tuple[list[Result], list[tuple[pathlib.Path, str]]]:
  """Runs every job in order; returns (results, [(path, error line)]).

  A failing file costs one ``error:`` line (through ``say``), never the
  others. ``on_result(result)`` is called as soon as each file is written,
  before the next one starts. Progress (stderr): images done for a folder,
  tiles done for one large image.
  """
  results, failures = [], []
  bar = progress.Progress(len(jobs), 'predict', unit='img',
                          disable=not show_progress or len(jobs) <= 1)
  for job in jobs:
    try:
      result = predict_image(
          predictor, job, outdir, tile=tile, sigma_max=sigma_max,
          log_var=log_var, say=say, display=display,
          tile_progress=show_progress and len(jobs) == 1,
          colour_bar=colour_bar)
    except Exception as e:  # pylint: disable=broad-except
      line = _error_line(job.path, e, tile)
      if verbose:
        traceback.print_exc()
      say(line)
      failures.append((job.path, line))
    else:
      results.append(result)
      if on_result is not None:
        on_result(result)
    bar.update()
  bar.close()
  return results, failures
