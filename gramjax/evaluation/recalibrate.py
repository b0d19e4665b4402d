"""Fitting a recalibration on held-out images, run as an evaluation folder
(same LR, same shave), and keeping it off the folders it is tested on."""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

from gramjax import data as data_lib
from gramjax.core.errors import UserError
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation.protocol import Protocol
from gramjax.metrics import recalibration
from gramjax.metrics.residuals import Residuals


def calibration_images(spec: str, predictor, key: str = 'calibrate_on'
                       ) -> tuple[str, list[pathlib.Path]]:
  """``(fitted_on, images)`` of the recalibration's images ``spec``: a
  folder of HR images, or ``heldout``, the images the model's training
  left out (``config.data.holdout``); errors name ``key``."""
  if spec == 'heldout':
    images = data_lib.held_out_images(predictor.config.data)
    return (f'heldout: {len(images)} images of '
            f'{predictor.config.data.train_dir}', images)
  (folder,) = folders_lib.resolve_folders(spec, key=key)
  return str(folder.path), folder.images


def check_disjoint(fitted_on: str, images: Sequence[pathlib.Path],
                   folders: Sequence[folders_lib.Folder]) -> None:
  """Refuses test folders that share an image (or the folder) with the
  recalibration's, naming both."""
  mine = {os.path.realpath(p): p for p in images}
  for folder in folders:
    shared = [p for p in folder.images if os.path.realpath(p) in mine]
    if shared:
      raise UserError(
          f'the recalibration images ({fitted_on}) and the test folder '
          f'{folder.path} '
          f'share {len(shared)} image(s) (e.g. {shared[0].name}): a '
          'recalibration must be fitted on images it is not tested on')


def fit_recalibration(predictor, images: Sequence[pathlib.Path],
                      protocol: Protocol, *, method: str, fitted_on: str,
                      quiet: bool = False) -> recalibration.Recalibration:
  """Fits ``method`` on the pooled errors and sigmas of ``images``, per
  channel space, measured as a test folder is under ``protocol`` (same LR,
  same shave, its Y correlation)."""
  if not predictor.predicts_uncertainty:
    raise UserError('a recalibration needs a model that predicts uncertainty '
                    '(this one was trained with the plain MSE)')
  name = ('held-out images' if fitted_on.startswith('heldout')
          else pathlib.Path(fitted_on).name)
  folder = folders_lib.Folder(name, pathlib.Path(fitted_on), list(images))
  results = folders_lib.folder_results(
      folder, protocol, predictor, label='fitting the recalibration on ',
      quiet=quiet, pool_rate=folders_lib.pool_rate_for(folder.images))
  pooled = {c: Residuals.pool(r.samples[c] for r in results)
            for c in recalibration.CHANNEL_SPACES}
  return recalibration.fit_channels(
      method, pooled, fitted_on=fitted_on, images=[p.name for p in images],
      step=predictor.step, y_correlation=protocol.y_correlation)
