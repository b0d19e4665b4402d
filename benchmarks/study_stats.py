"""The CPU-scale study's statistics (benchmarks/reproduce_cpu_scale.py),
fixed before any model was evaluated: which runs collapsed, read from
training signals alone (never a test set), and paired per-seed differences
with a 95 % interval, the only form in which the page compares models."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics

from scipy import stats

NAMES = {'mse': 'MSE', 'mle': 'MLE', 'gram': 'GRAM',
         'gram_255': 'GRAM [0,255]', 'loss_rescale': 'Loss-rescale',
         'beta_nll': 'beta-NLL 0.5', 'beta_nll_1': 'beta-NLL 1',
         'faithful': 'Faithful', 'gram_warmup': 'GRAM+warm-up',
         'gram_noise_init': 'GRAM+noise init'}

# ------------------------------------------------------- collapse rule --
# A run collapsed when the on-device guard dropped more than this share of
# its steps (non-finite loss or gradients), when its last logged training
# loss is not finite, or when its training-batch PSNR (of the mean, logged
# with the loss) is not higher over the last tenth of the logs than over
# the first. PSNR, not the loss: the value of GRAM's or beta-NLL's loss is
# reweighted as sigma changes, so it need not fall while the model learns.
MAX_DROPPED_SHARE = 0.01
COLLAPSE_RULE = (
    'a run collapsed when the guard dropped more than '
    f'{MAX_DROPPED_SHARE:.0%} of its steps (non-finite loss or gradients), '
    'when its last logged training loss is not finite, or when the mean '
    'training-batch PSNR of the last tenth of its logs is not above that of '
    'the first tenth; training signals only, fixed before any model was '
    'evaluated')


def training_signals(workdir: pathlib.Path, total_steps: int) -> dict:
  """What the collapse rule reads, from the run's metrics.jsonl: the
  logged training losses and training-batch PSNRs (dB; the means of their
  first and last tenth) and the steps the guard dropped
  (``skipped_steps``, written under ``nan_policy='skip'``).
  ``collapsed``: the reason, or None."""
  rows = [json.loads(line) for line in
          (workdir / 'metrics.jsonl').read_text().splitlines() if line]
  logged = [r for r in rows if 'loss' in r and 'psnr' in r]
  losses = [float(r['loss']) for r in logged]
  psnr = [float(r['psnr']) for r in logged]
  counted = [r for r in rows if 'skipped_steps' in r]
  dropped = int(counted[-1]['skipped_steps']) if counted else 0
  first_dropped = int(counted[-1]['first_skipped_step']) if counted else -1
  tenth = max(1, len(logged) // 10)
  tenths = lambda v: ((statistics.fmean(v[:tenth]),
                       statistics.fmean(v[-tenth:])) if v else
                      (math.nan, math.nan))
  (loss_head, loss_tail), (head, tail) = tenths(losses), tenths(psnr)
  reason = None
  if dropped > MAX_DROPPED_SHARE * total_steps:
    reason = (f'the guard dropped {dropped} of {total_steps} steps (the '
              f'first at step {first_dropped})')
  elif not losses or not math.isfinite(losses[-1]):
    reason = 'its last logged training loss is not finite'
  elif not tail > head:
    reason = (f'its training PSNR did not rise (first tenth {head:.2f} dB, '
              f'last tenth {tail:.2f} dB)')
  return {'logged': len(logged), 'loss_first_tenth': loss_head,
          'loss_last_tenth': loss_tail, 'psnr_first_tenth': head,
          'psnr_last_tenth': tail, 'dropped_steps': dropped,
          'first_dropped_step': first_dropped, 'collapsed': reason}


# ---------------------------------------------------- paired intervals --

@dataclasses.dataclass(frozen=True)
class Paired:
  """Per-seed differences a - b (both trained with the same seed) and
  their mean's two-sided 95 % t interval. A difference is claimed only
  where the interval excludes 0 (``measured``)."""
  diffs: tuple

  @property
  def n(self) -> int:
    return len(self.diffs)

  @property
  def mean(self) -> float:
    return statistics.fmean(self.diffs) if self.diffs else math.nan

  @property
  def half(self) -> float:
    """The 95 % interval's half-width (nan below two seeds)."""
    if self.n < 2:
      return math.nan
    return (stats.t.ppf(0.975, self.n - 1) * statistics.stdev(self.diffs)
            / math.sqrt(self.n))

  @property
  def measured(self) -> bool:
    return self.n >= 2 and abs(self.mean) > self.half

  def text(self, unit: str = '', fmt: str = '+.2f') -> str:
    """'+0.12 [-0.03, +0.27] dB' (the mean and its 95 % interval)."""
    u = f' {unit}' if unit else ''
    if self.n < 2:
      return (f'{self.mean:{fmt}}{u} (one seed: no interval)' if self.n
              else 'no pair')
    return (f'{self.mean:{fmt}} [{self.mean - self.half:{fmt}}, '
            f'{self.mean + self.half:{fmt}}]{u}')

  def verdict(self, above: str, below: str) -> str:
    """``above`` or ``below`` where the interval excludes 0, else "no
    difference measured"."""
    if self.n and all(d == 0 for d in self.diffs):
      return 'identical in every seed'
    if not self.measured:
      return 'no difference measured'
    return above if self.mean > 0 else below


def paired(value, a: str, b: str, seeds) -> Paired:
  """``value(loss, seed)`` (None where undefined) of ``a`` minus ``b``,
  over the seeds where both are defined."""
  out = []
  for s in seeds:
    va, vb = value(a, s), value(b, s)
    if va is not None and vb is not None:
      out.append(va - vb)
  return Paired(tuple(out))


def mean_sd(values) -> tuple[float, float]:
  values = list(values)
  if not values:
    return math.nan, math.nan
  return (statistics.fmean(values),
          statistics.stdev(values) if len(values) > 1 else 0.0)


def pm(values, fmt: str = '.2f') -> str:
  """'mean ±sd' over seeds ('-' where there is none)."""
  values = list(values)
  if not values:
    return '-'
  m, sd = mean_sd(values)
  return f'{m:{fmt}} ±{sd:{fmt}}'
