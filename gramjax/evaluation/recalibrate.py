"""Fitting a calibration on held-out images, run as an evaluation folder
(same LR, same shave), bound to the weights it was fitted on, and kept off
the folders it is tested on (by content, not by path)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import os
import pathlib
from typing import Sequence

import numpy as np

from gramjax import data as data_lib
from gramjax.core.errors import UserError
from gramjax.data import heldout
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation import intervals
from gramjax.evaluation.protocol import Protocol
from gramjax.metrics import conformal
from gramjax.metrics import luma
from gramjax.metrics import recalibration
from gramjax.metrics.residuals import Residuals


def calibration_images(spec: str, workdir, key: str = 'calibrate_on'
                       ) -> tuple[str, list[pathlib.Path]]:
  """``(fitted_on, images)`` of the calibration's images ``spec``: a
  folder of HR images, or ``heldout`` (``heldout[a:b]``: that part), the
  images the run recorded as held out when training started
  (``data.heldout``); errors name ``key``."""
  if heldout.is_spec(spec):
    images = heldout.recorded(workdir, spec, key)
    return (f'{spec}: {len(images)} images held out of training by '
            f'{workdir}', images)
  (folder,) = folders_lib.resolve_folders(spec, key=key)
  return str(folder.path), folder.images


@functools.lru_cache(maxsize=4096)
def _digest(path: str, mtime_ns: int, size: int) -> str:
  del mtime_ns, size          # The cache key: a changed file is read again.
  return data_lib.content_digest(data_lib.load_image(path))


def image_digests(images: Sequence[pathlib.Path]) -> list[tuple[str, str]]:
  """(name, content digest) of each image (``data.content_digest``),
  each file decoded once per process while it is unchanged (report checks
  every model's calibration against the same folders)."""
  out = []
  for p in images:
    st = os.stat(p)
    out.append((p.name, _digest(os.path.realpath(p), st.st_mtime_ns,
                                st.st_size)))
  return out


def shared_images(calibration: Sequence[tuple[str, str]],
                  folders: Sequence[folders_lib.Folder]
                  ) -> dict[str, list[str]]:
  """``{folder name: [its images with the pixels of a calibration
  image]}`` for the folders that share any (by content: a copy under
  another name or folder is found)."""
  mine = {digest for _, digest in calibration}
  out = {}
  for folder in folders:
    shared = [name for name, digest in image_digests(folder.images)
              if digest in mine]
    if shared:
      out[folder.name] = shared
  return out


def check_disjoint(recal: recalibration.Recalibration,
                   folders: Sequence[folders_lib.Folder],
                   allow_in_sample: bool = False) -> dict[str, list[str]]:
  """Refuses test folders that share an image's content with ``recal``'s
  calibration images, naming both; ``allow_in_sample``: returns them
  instead (their entries are then marked ``in_sample``)."""
  shared = shared_images(recal.images, folders)
  if shared and not allow_in_sample:
    name, images = next(iter(shared.items()))
    raise UserError(
        f'the calibration images ({recal.fitted_on}) and the test folder '
        f'{name} share {len(images)} image(s) by content (e.g. '
        f'{images[0]}): a calibration must be tested on images it was not '
        'fitted on (or allow in-sample entries, marked as such)')
  return shared


# Bytes of model outputs the calibration keeps between its RGB and its Y
# pass (beyond them the model runs again).
REMEMBER_BYTES = 2 << 30


class _Remembering:
  """``predictor``, keeping its outputs (up to REMEMBER_BYTES) by the LR
  image's content, so the Y pass over the calibration images reuses the
  RGB pass's forward instead of running the model a second time."""

  def __init__(self, predictor):
    self._predictor, self._kept, self._bytes = predictor, {}, 0

  def __getattr__(self, name):
    return getattr(self._predictor, name)

  def __call__(self, lr: np.ndarray, tile: int = 128):
    key = (hashlib.sha256(np.ascontiguousarray(lr).tobytes()).hexdigest(),
           lr.shape, tile)
    if key in self._kept:
      return self._kept[key]
    out = self._predictor(lr, tile=tile)
    size = sum(x.nbytes for x in out)
    if self._bytes + size <= REMEMBER_BYTES:
      self._kept[key], self._bytes = out, self._bytes + size
    return out


@dataclasses.dataclass(frozen=True)
class Measured:
  """The calibration images measured once (``measure``), from which every
  method is fitted (``fit_measured``)."""
  fitted_on: str
  results: list                 # ImageResult, with 'rgb' and 'y' samples.
  y_correlation: float
  images: tuple                 # (name, content digest) per image.
  model: dict                   # Predictor.model_key().


def _fit_results(predictor, folder, protocol, quiet, pool_values):
  """The calibration images measured for both channel spaces: the RGB
  values first, whose pooled standardised errors give the channel
  correlation, then the Y channel under it (from the same model outputs).
  Returns (results with both samples, correlation)."""
  predictor = _Remembering(predictor)
  rate = folders_lib.pool_rate_for(folder.images, pool_values)
  base = dataclasses.replace(protocol, recalibration=None)
  results = folders_lib.folder_results(
      folder, dataclasses.replace(base, channels=('rgb',)), predictor,
      label='calibration, RGB: ', quiet=quiet, pool_rate=rate)
  rho = folders_lib.pooled_correlation(results)
  if not math.isfinite(rho):
    rho = luma.Y_CORRELATION
  elif not luma.CORRELATION_RANGE[0] <= rho <= luma.CORRELATION_RANGE[1]:
    logging.warning('channel correlation %.3f of the calibration images '
                    'clipped to %s', rho, luma.CORRELATION_RANGE)
    rho = float(np.clip(rho, *luma.CORRELATION_RANGE))
  y = folders_lib.folder_results(
      folder, dataclasses.replace(base, channels=('y',), y_correlation=rho),
      predictor, label='calibration, Y: ', quiet=quiet, pool_rate=rate)
  for r, ry in zip(results, y):
    r.samples['y'] = ry.samples['y']
  return results, rho


def measure(predictor, images: Sequence[pathlib.Path], protocol: Protocol,
            *, fitted_on: str, quiet: bool = False,
            pool_values: int = folders_lib.POOL_VALUES) -> Measured:
  """Runs the model once over the calibration ``images``, measured as a
  test folder is under ``protocol`` (same LR, same shave, at most
  ``pool_values`` values pooled), RGB and Y (the latter under the channel
  correlation measured on these images)."""
  if not predictor.predicts_uncertainty:
    raise UserError('a calibration needs a model that predicts uncertainty '
                    '(this one was trained with the plain MSE)')
  name = ('held-out images' if fitted_on.startswith('heldout')
          else pathlib.Path(fitted_on).name)
  folder = folders_lib.Folder(name, pathlib.Path(fitted_on), list(images))
  results, rho = _fit_results(predictor, folder, protocol, quiet,
                              pool_values)
  return Measured(fitted_on, results, rho, tuple(image_digests(images)),
                  predictor.model_key())


def _check_enough(method: str, n: int, alpha: float, fitted_on: str) -> None:
  if method in conformal.METHODS and n < conformal.min_images(alpha):
    raise UserError(f'{method} at alpha={alpha} needs at least '
                    f'{conformal.min_images(alpha)} calibration images; '
                    f'{fitted_on} has {n}')


def fit_measured(measured: Measured, method: str, *,
                 alpha: float = conformal.ALPHA,
                 delta: float = conformal.DELTA
                 ) -> recalibration.Recalibration:
  """Fits ``method`` (``recalibration.ALL_METHODS``) per channel space on
  the measured calibration images, bound to their model and content."""
  m, n = measured, len(measured.results)
  if method in conformal.METHODS:
    _check_enough(method, n, alpha, m.fitted_on)
    interval = intervals.fit_interval(method, m.results, alpha=alpha,
                                      delta=delta)
    if not all(math.isfinite(v) for v in interval.lam.values()):
      raise UserError(f'{method} cannot certify a risk of {alpha} at '
                      f'delta={delta} with the {n} images of '
                      f'{m.fitted_on}: use more images or a larger alpha')
    return recalibration.Recalibration(method, m.fitted_on, m.images,
                                       m.model, m.y_correlation, {},
                                       interval)
  pooled = {c: Residuals.pool(r.samples[c] for r in m.results)
            for c in recalibration.CHANNEL_SPACES}
  return recalibration.fit_channels(method, pooled, fitted_on=m.fitted_on,
                                    images=m.images, model=m.model,
                                    y_correlation=m.y_correlation)


def fit_recalibration(predictor, images: Sequence[pathlib.Path],
                      protocol: Protocol, *, method: str, fitted_on: str,
                      alpha: float = conformal.ALPHA,
                      delta: float = conformal.DELTA,
                      quiet: bool = False) -> recalibration.Recalibration:
  """Fits ``method`` on ``images`` (``measure``, then ``fit_measured``);
  a conformal method with too few images is refused before the model
  runs."""
  _check_enough(method, len(images), alpha, fitted_on)
  return fit_measured(measure(predictor, images, protocol,
                              fitted_on=fitted_on, quiet=quiet),
                      method, alpha=alpha, delta=delta)
