"""Measuring while training: the validation sets of ``config.evals``
(``Evaluator``, run by the training loop at its own period) and the sample
images super-resolved at the end of a run (``write_samples``), both through
``gramjax.evaluation.protocol``'s protocol.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time

import numpy as np

from gramjax import data as data_lib
from gramjax.data import heldout
from gramjax.data import pipeline
from gramjax.core import files
from gramjax.core import pixels
from gramjax.core import visualize
from gramjax.evaluation import folders
from gramjax.evaluation.protocol import evaluate_image
from gramjax.evaluation.protocol import Protocol
from gramjax.metrics import quality as metrics
from gramjax.metrics import uncertainty
from gramjax.metrics.residuals import Residuals
from gramjax.state import config as config_lib


@dataclasses.dataclass
class Evaluator:
  """A validation set measured while training (``config.evals.<name>``)."""
  name: str
  images: list[pathlib.Path]
  every: int
  convention: str = 'standard'
  tile: int = 128

  def run(self, predictor) -> dict[str, float]:
    """``val/<name>/{psnr,ssim}`` and, for models that predict uncertainty,
    ``nll``, ``ause`` and ``coverage_90`` (RGB, pooled, grey levels), plus
    the seconds it took: only the figures it logs are computed."""
    start = time.time()
    protocol = Protocol(predictor.scale, self.convention, self.tile,
                        channels=('rgb',))
    rate = folders.pool_rate_for(self.images)
    results = [evaluate_image(p, protocol, predictor, pool_rate=rate,
                              image_figures=False) for p in self.images]
    out = {'psnr': np.mean([r.psnr for r in results]),
           'ssim': np.mean([r.ssim for r in results])}
    if results[0].samples:
      res = Residuals.pool(r.samples['rgb'] for r in results)
      out['nll'] = uncertainty.gaussian_nll(res)
      out['ause'] = uncertainty.ause(res)
      out['coverage_90'] = uncertainty.coverage(res, levels=(0.9,))[0.9]
    out['seconds'] = time.time() - start
    return {f'val/{self.name}/{k}': float(v) for k, v in out.items()}


def evaluators_from_config(config) -> list[Evaluator]:
  """``config.evals`` (name -> {folder, every, convention, max_images,
  tile}) as evaluators; a folder ``heldout[a:b]`` is that part of the
  training images ``config.data.holdout`` keeps out. A folder that does not exist is logged and left
  out (training goes on); a bad key or value is a ``UserError``
  (``state.config.eval_specs``)."""
  evaluators = []
  for name, spec in config_lib.eval_specs(config).items():
    key = f'config.evals.{name}'
    folder = str(spec['folder'])
    if heldout.is_spec(folder):
      images = heldout.select(pipeline.held_out_images(config.data), folder,
                              f'{key}.folder')
    elif not folder.startswith('builtin:') and not pathlib.Path(
        os.path.expanduser(folder)).exists():
      logging.warning('validation set %s: %s does not exist; training goes '
                      'on without it', name, folder)
      continue
    else:
      images = data_lib.resolve_images(folder, key=f'{key}.folder',
                                       held_out=True)
    if spec['max_images']:
      images = images[:spec['max_images']]
    logging.info('validation set %s: %d image(s) from %s every %d steps',
                 name, len(images), folder, spec['every'])
    evaluators.append(Evaluator(name, images, spec['every'],
                                spec['convention'], spec['tile']))
  return evaluators


# -------------------------------------------------------------- samples --

def write_samples(predictor, spec: str, outdir: pathlib.Path) -> list[dict]:
  """Super-resolves each image of ``spec`` (a data spec, e.g.
  ``config.data.sample_images``) and writes ``<stem>_mean.png``,
  ``<stem>_uncertainty.png`` (sigma in grey levels, colour-mapped),
  ``<stem>_bicubic.png`` and ``samples.json`` (PSNR-Y of both under the
  standard convention, sigma median and 99th percentile)."""
  scale = predictor.scale
  outdir.mkdir(parents=True, exist_ok=True)
  results = []
  for path in data_lib.resolve_images(spec, key='config.data.sample_images',
                                      held_out=True):
    hr = pixels.crop_to_scale(data_lib.load_image(path), scale)
    lr = pixels.make_lr(hr, scale)
    mean, log_var = predictor(lr / 255.0)
    sr = pixels.mean_to_uint8(mean)
    bic = pixels.upscale_bicubic(lr, scale)
    sigma = pixels.sigma_grey(log_var)
    visualize.save_png(outdir / f'{path.stem}_mean.png', sr)
    visualize.save_png(outdir / f'{path.stem}_bicubic.png', bic)
    visualize.save_png(outdir / f'{path.stem}_uncertainty.png',
                       visualize.colormap(sigma))
    grey = metrics.is_greyscale_file(path)
    result = {'image': path.name,
              'psnr_y': metrics.measure(sr, hr, scale=scale, grey=grey)[0],
              'psnr_y_bicubic': metrics.measure(bic, hr, scale=scale,
                                                grey=grey)[0],
              'sigma_grey_median': float(np.median(sigma)),
              'sigma_grey_p99': float(np.percentile(sigma, 99))}
    logging.info(
        'sample %s: PSNR-Y %.2f dB (bicubic %.2f dB), sigma median %.2f / '
        'p99 %.2f grey levels -> %s', path.name, result['psnr_y'],
        result['psnr_y_bicubic'], result['sigma_grey_median'],
        result['sigma_grey_p99'], outdir)
    result['weights'] = predictor.weights
    results.append(result)
  files.write_text_atomic(outdir / 'samples.json',
                          json.dumps(results, indent=2))
  return results
