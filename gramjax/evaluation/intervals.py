"""Conformal intervals on folders (``gramjax.metrics.conformal``): fitting
crc or rcps on calibration images, the figures of a stored interval on a
test folder, and the split study that checks the guarantee on one folder.

Every figure is per channel space on the images' pooled samples (a share
of each image's values above ``folders.POOL_VALUES``: an image's loss is
then estimated from its share); widths are in grey levels ([0, 255]).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from gramjax.core import progress
from gramjax.evaluation.protocol import ImageResult
from gramjax.metrics import conformal
from gramjax.metrics.conformal import ImageRatios
from gramjax.metrics.recalibration import CHANNEL_SPACES, Interval

STUDY_METHODS = ('crc', 'rcps', 'constant_width')
QUARTILES = 4


def image_ratios(results: Sequence[ImageResult], channel: str,
                 constant: bool = False) -> list[ImageRatios]:
  """Each image's sorted |err| / sigma (|err| in grey levels for a
  ``constant`` sigma of 1)."""
  out = []
  for r in results:
    err, sigma = r.samples[channel]
    out.append(ImageRatios.of(err, 1.0 if constant else sigma))
  return out


def fit_interval(method: str, results: Sequence[ImageResult], *,
                 alpha: float, delta: float) -> Interval:
  """``method`` (crc, rcps) on the images' samples, per channel space,
  with the constant-width baseline of the same method beside it."""
  lam, constant = {}, {}
  for channel in CHANNEL_SPACES:
    lam[channel] = conformal.fit(method, image_ratios(results, channel),
                                 alpha, delta)
    constant[channel] = conformal.fit(
        method, image_ratios(results, channel, constant=True), alpha, delta)
  return Interval(alpha, delta if method == 'rcps' else None, len(results),
                  lam, constant)


class _Quartiles:
  """Each image's |err|, sigma and quartile of sigma (edges from all the
  images given, pooled): made once, measured at any lambda on any subset."""

  def __init__(self, results, channel):
    self.abs_err = [np.abs(r.samples[channel][0]) for r in results]
    self.sigma = [r.samples[channel][1] for r in results]
    edges = np.quantile(np.concatenate(self.sigma),
                        np.linspace(0, 1, QUARTILES + 1)[1:-1])
    self.bins = [np.searchsorted(edges, s, side='right') for s in self.sigma]

  def outside_by_quartile(self, lam, constant, images=None) -> list[float]:
    """The share outside the interval within each quartile of sigma, over
    ``images`` (indices; default: all)."""
    hits, counts = np.zeros(QUARTILES), np.zeros(QUARTILES)
    for i in range(len(self.bins)) if images is None else images:
      outside = self.abs_err[i] > lam * (1.0 if constant else self.sigma[i])
      hits += np.bincount(self.bins[i], weights=outside, minlength=QUARTILES)
      counts += np.bincount(self.bins[i], minlength=QUARTILES)
    return [float(h / c) if c else math.nan for h, c in zip(hits, counts)]


def interval_figures(results: Sequence[ImageResult], channel: str,
                     lam: float, alpha: float, constant: bool = False,
                     quartiles: _Quartiles | None = None,
                     ratios: Sequence[ImageRatios] | None = None,
                     images: Sequence[int] | None = None) -> dict:
  """How ``mean +- lam * sigma`` (``constant``: ``+- lam`` grey levels)
  does on these images: ``risk`` (the mean over images of the share of
  values outside, what the guarantee bounds), the share of images whose
  own share is at most ``alpha``, the pooled coverage, the mean half-width
  and the share outside by quartile of sigma. ``quartiles``, ``ratios``:
  made already for a superset of ``results``, which are then its
  ``images`` (indices)."""
  quartiles = quartiles or _Quartiles(results, channel)
  ratios = ratios or image_ratios(results, channel, constant)
  picked = range(len(results)) if images is None else images
  losses = [ratios[i].loss(lam) for i in picked]
  chosen = [results[i] for i in picked]
  widths = [np.mean(lam * (1.0 if constant else r.samples[channel][1]))
            for r in chosen]
  sizes = [r.samples[channel][0].size for r in chosen]
  outside = np.average(losses, weights=sizes)
  return {'risk': float(np.mean(losses)),
          'frac_images_risk_le_alpha': float(np.mean(np.array(losses)
                                                      <= alpha)),
          'coverage': float(1.0 - outside),
          'mean_halfwidth_grey': float(np.average(widths, weights=sizes)),
          'risk_by_sigma_quartile': quartiles.outside_by_quartile(
              lam, constant, images)}


def interval_entry(results: Sequence[ImageResult], interval: Interval,
                   method: str) -> dict:
  """The ``interval_calibrated`` of a folder entry: per channel space the
  fitted interval's figures and the constant-width baseline's."""
  out = {'method': method, 'alpha': interval.alpha, 'delta': interval.delta,
         'calibration_images': interval.n}
  for channel in results[0].samples:
    out[channel] = interval_figures(results, channel, interval.lam[channel],
                                    interval.alpha)
    out[channel]['lambda'] = interval.lam[channel]
    out[channel]['constant_width'] = interval_figures(
        results, channel, interval.constant_grey[channel], interval.alpha,
        constant=True)
  return out


def split_study(results: Sequence[ImageResult], *, splits: int,
                alpha: float, delta: float, seed: int = 0,
                channel: str = 'rgb', quiet: bool = False) -> dict:
  """``splits`` random halvings (seeded) of one folder's images into
  calibration and test: crc, rcps and constant width (crc with sigma 1)
  fitted on each calibration half and measured on its test half (the
  quartiles of sigma are the folder's). A progress line on stderr unless
  ``quiet``."""
  n = len(results)
  if n // 2 < conformal.min_images(alpha):
    raise ValueError(f'crc at alpha={alpha} needs at least '
                     f'{conformal.min_images(alpha)} calibration images, so '
                     f'{2 * conformal.min_images(alpha)} images to split; '
                     f'this folder has {n}')
  rng = np.random.default_rng(seed)
  ratios = image_ratios(results, channel)
  flat = image_ratios(results, channel, constant=True)
  quartiles = _Quartiles(results, channel)
  found = {m: {'risk': [], 'halfwidth': [], 'quartiles': []}
           for m in STUDY_METHODS}
  bar = progress.Progress(splits, 'conformal splits', unit='split',
                          disable=quiet)
  for _ in range(splits):
    order = rng.permutation(n)
    cal, test = order[:n // 2], order[n // 2:]
    for method in STUDY_METHODS:
      constant = method == 'constant_width'
      source = flat if constant else ratios
      lam = conformal.fit('crc' if constant else method,
                          [source[i] for i in cal], alpha, delta)
      if not math.isfinite(lam):          # rcps: nothing certified.
        found[method]['uncertified'] = found[method].get('uncertified', 0) + 1
        continue
      fig = interval_figures(results, channel, lam, alpha, constant,
                             quartiles, source, test)
      found[method]['risk'].append(fig['risk'])
      found[method]['halfwidth'].append(fig['mean_halfwidth_grey'])
      found[method]['quartiles'].append(fig['risk_by_sigma_quartile'])
    bar.update()
  bar.close()
  out = {'alpha': alpha, 'delta': delta, 'splits': splits, 'seed': seed,
         'channel': channel, 'calibration_images': n // 2,
         'test_images': n - n // 2}
  for method, f in found.items():
    risk = np.array(f['risk'])
    out[method] = {'uncertified_splits': f.get('uncertified', 0)}
    if risk.size:
      out[method].update(
          mean_risk=float(risk.mean()),
          risk_sd=float(risk.std(ddof=1)) if risk.size > 1 else math.nan,
          frac_risk_le_alpha=float(np.mean(risk <= alpha)),
          mean_halfwidth_grey=float(np.mean(f['halfwidth'])),
          risk_by_sigma_quartile=[float(x) for x in
                                  np.nanmean(f['quartiles'], axis=0)])
  return out


def describe_study(name: str, study: dict) -> str:
  """A few lines on a split study, for the console."""
  lines = [f"{name}: {study['splits']} random splits, "
           f"{study['calibration_images']} calibration / "
           f"{study['test_images']} test images, alpha {study['alpha']}"]
  for method in STUDY_METHODS:
    m = study[method]
    if 'mean_risk' not in m:
      lines.append(f'  {method:15s} never certified')
      continue
    lines.append(f"  {method:15s} mean test risk {m['mean_risk']:.4f}, "
                 f"risk <= alpha in {m['frac_risk_le_alpha']:.0%} of splits, "
                 f"half-width {m['mean_halfwidth_grey']:.2f} grey levels")
  return '\n'.join(lines)
