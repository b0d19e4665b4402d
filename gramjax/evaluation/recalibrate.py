"""Fitting a calibration on held-out images, run as an evaluation folder
(same LR, same shave), bound to the weights it was fitted on, and kept off
the folders it is tested on (by content, not by path)."""

from __future__ import annotations

import dataclasses
import functools
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


def _fit_results(predictor, folder, protocol, quiet):
  """The calibration images measured twice: the RGB values first, whose
  pooled standardised errors give the channel correlation, then the Y
  channel under it. Returns (results with both samples, correlation)."""
  rate = folders_lib.pool_rate_for(folder.images)
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


def fit_recalibration(predictor, images: Sequence[pathlib.Path],
                      protocol: Protocol, *, method: str, fitted_on: str,
                      alpha: float = conformal.ALPHA,
                      delta: float = conformal.DELTA,
                      quiet: bool = False) -> recalibration.Recalibration:
  """Fits ``method`` (``recalibration.ALL_METHODS``) on ``images``, per
  channel space, measured as a test folder is under ``protocol`` (same
  LR, same shave); the Y channel under the channel correlation measured
  on these images. Bound to ``predictor``'s weights (``model_key``) and
  to the images' content."""
  if not predictor.predicts_uncertainty:
    raise UserError('a calibration needs a model that predicts uncertainty '
                    '(this one was trained with the plain MSE)')
  if method in conformal.METHODS and len(images) < conformal.min_images(
      alpha):
    raise UserError(f'{method} at alpha={alpha} needs at least '
                    f'{conformal.min_images(alpha)} calibration images; '
                    f'{fitted_on} has {len(images)}')
  name = ('held-out images' if fitted_on.startswith('heldout')
          else pathlib.Path(fitted_on).name)
  folder = folders_lib.Folder(name, pathlib.Path(fitted_on), list(images))
  results, rho = _fit_results(predictor, folder, protocol, quiet)
  digests = tuple(image_digests(images))
  model = predictor.model_key()
  if method in conformal.METHODS:
    interval = intervals.fit_interval(method, results, alpha=alpha,
                                      delta=delta)
    if not all(math.isfinite(v) for v in interval.lam.values()):
      raise UserError(f'{method} cannot certify a risk of {alpha} at '
                      f'delta={delta} with the {len(images)} images of '
                      f'{fitted_on}: use more images or a larger alpha')
    return recalibration.Recalibration(method, fitted_on, digests, model,
                                       rho, {}, interval)
  pooled = {c: Residuals.pool(r.samples[c] for r in results)
            for c in recalibration.CHANNEL_SPACES}
  return recalibration.fit_channels(method, pooled, fitted_on=fitted_on,
                                    images=digests, model=model,
                                    y_correlation=rho)
