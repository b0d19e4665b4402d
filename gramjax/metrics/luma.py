"""The luma channel's uncertainty: Y's mean and variance from the per-channel
RGB ones under an assumed correlation of the channel errors, and that
correlation as measured. Grey levels ([0, 255] units)."""

from __future__ import annotations

import numpy as np

from gramjax.core.colour import LUMA_255

# The default correlation of the R, G and B errors assumed by ``y_channel``:
# full. SR errors are strongly correlated across channels (measured on our
# models' and bicubic's errors on Set5/Set14: docs/evaluation.md), and
# independence would make sigma_Y far too small.
Y_CORRELATION = 1.0
# Where var_Y >= 0 for every channel variances.
CORRELATION_RANGE = (-0.5, 1.0)


def y_channel(mu_rgb, var_rgb, correlation: float = Y_CORRELATION
              ) -> tuple[np.ndarray, np.ndarray]:
  """Mean and variance of the BT.601 luma Y from per-channel RGB ones.

  With ``w = gramjax.metrics.quality.LUMA_255`` (as ``gramjax.metrics.quality.rgb_to_y``),
  ``mu_Y = 16 + w . mu``; the Y error is ``w . e`` over the channel errors,
  whose variance needs their correlation, which the model does not predict.
  With one correlation ``rho`` between every pair of channels and
  ``a_c = w_c sd_c``: ``var_Y = (1 - rho) sum_c a_c^2 + rho (sum_c a_c)^2``;
  ``rho = 1`` (default, ``Y_CORRELATION``) gives ``sd_Y = sum_c w_c sd_c``,
  ``rho = 0`` the independence sum ``sum_c w_c^2 var_c``. Measure the Y
  error against float Y, not Y rounded to integers (that adds 1/12).

  Args:
    mu_rgb: predicted means, (..., 3), in [0, 255] units.
    var_rgb: predicted variances, (..., 3), in [0, 255]^2 units
      (``255**2 * exp(s)`` for s = log sigma^2 in [0, 1] units).
    correlation: the channel errors' correlation, in ``CORRELATION_RANGE``
      (from -1/2, where three equal channel variances cancel, to 1).

  Returns:
    ``(mu_y, var_y)``, float64 (...); sqrt(var_y) is sigma_Y, grey levels.
  """
  mu = np.asarray(mu_rgb, np.float64)
  var = np.asarray(var_rgb, np.float64)
  if mu.shape[-1:] != (3,) or var.shape[-1:] != (3,):
    raise ValueError(f'expected (..., 3) RGB arrays, got {mu.shape} and '
                     f'{var.shape}')
  if np.any(var < 0):
    raise ValueError('variances must be >= 0')
  lo, hi = CORRELATION_RANGE
  if not lo <= correlation <= hi:
    raise ValueError(f'the channel correlation must be in [{lo}, {hi}], '
                     f'got {correlation!r}')
  a = np.sqrt(var) * LUMA_255
  var_y = ((1.0 - correlation) * np.sum(a * a, axis=-1)
           + correlation * np.sum(a, axis=-1) ** 2)
  return 16.0 + mu @ LUMA_255, var_y


def channel_correlation(err_rgb) -> float:
  """Mean Pearson correlation of the three pairs of channel errors.

  ``err_rgb``: (..., 3) target minus mean, all pixels pooled. NaN when a
  channel's error is constant. What ``y_channel``'s ``correlation`` is
  meant to be (sd-weighted pairs aside).
  """
  e = np.asarray(err_rgb, np.float64).reshape(-1, 3)
  if e.shape[0] < 2:
    return float('nan')
  e = e - e.mean(axis=0)
  norms = np.sqrt(np.sum(e * e, axis=0))
  if np.any(norms == 0):
    return float('nan')
  c = (e.T @ e) / np.outer(norms, norms)
  return float((c[0, 1] + c[0, 2] + c[1, 2]) / 3.0)


def standardized_moments(err_rgb, sigma_rgb) -> np.ndarray:
  """The sums that a pooled correlation of the standardised errors
  ``z = err / sigma`` needs, float64 (13,): count, sum z (3), sum z z^T
  (3 x 3, flattened). Add those of several images to pool them."""
  z = (np.asarray(err_rgb, np.float64)
       / np.asarray(sigma_rgb, np.float64)).reshape(-1, 3)
  return np.concatenate([[z.shape[0]], z.sum(axis=0), (z.T @ z).ravel()])


def correlation_from_moments(moments) -> float:
  """Mean Pearson correlation of the three channel pairs from
  ``standardized_moments`` (summed over images: pooled). What
  ``y_channel``'s ``correlation`` assumes. NaN where a channel is
  constant."""
  m = np.asarray(moments, np.float64)
  n, s, ss = m[0], m[1:4], m[4:13].reshape(3, 3)
  if n < 2:
    return float('nan')
  cov = ss / n - np.outer(s, s) / (n * n)
  sd = np.sqrt(np.diag(cov))
  if np.any(sd <= 0):
    return float('nan')
  c = cov / np.outer(sd, sd)
  return float((c[0, 1] + c[0, 2] + c[1, 2]) / 3.0)
