"""The CPU-scale study's answers (benchmarks/reproduce_cpu_scale.py): each
a Markdown bullet whose every sentence follows from the results (what GRAM
costs, which runs collapsed, which model is best, what recalibration does).
"""

from __future__ import annotations

import statistics

from benchmarks.study_tables import (COLLAPSE_DB, NAMES, alive, collapsed,
                                     diffs, figure,
                                     likelihood, mean_sd, pm, psnr)

# ------------------------------------------------------------- answers --

NOISE_FLOOR = 0.05    # dB: below this a PSNR difference is not claimed.


def gap(results, a, b, seeds, folders) -> tuple[float, float]:
  """Mean and seed sd of a - b (PSNR), pooled over folders and seeds."""
  return mean_sd([d for f in folders for d in diffs(results, a, b, seeds, f)])


def real(m: float, sd: float) -> bool:
  """A difference worth a word: beyond the noise floor and its seed sd."""
  return abs(m) > max(NOISE_FLOOR, sd)


def cost_answer(results, losses, seeds, folders) -> list[str]:
  """What GRAM's PSNR cost is here and what causes it."""
  if not {'mse', 'gram'} <= set(losses):
    return ['(Needs MSE and GRAM.)']
  g = lambda a, b='mse': gap(results, a, b, seeds, folders)
  fmt = lambda ms: f'{ms[0]:+.2f} ±{ms[1]:.2f} dB'
  per = ', '.join(
      f'{f} {pm(diffs(results, "gram", "mse", seeds, f), signed=True)} dB'
      for f in folders)
  n_gram = len(alive(results, 'gram', seeds))
  out = [f'- **Cost.** GRAM is {fmt(g("gram"))} from MSE over '
         f'{len(folders)} set(s) and {n_gram} seeds ({per}; the paper: '
         'about -0.05 to -0.1 dB at full scale).']
  # A model counts where at least one of its runs did not collapse.
  have = lambda *ls: all(l in losses and alive(results, l, seeds)
                         for l in ls)
  if have('mle'):
    n_mle = len(alive(results, 'mle', seeds))
    mle, gram = g('mle'), g('gram')
    pairs = [(f, s) for f in folders for s in seeds
             if s in alive(results, 'mle', seeds)
             and s in alive(results, 'gram', seeds)]
    below = sum(psnr(results, 'mle', s, f) < psnr(results, 'gram', s, f)
                for f, s in pairs)
    out.append(
        f'- **The paper\'s ordering.** MLE (the plain NLL) is {fmt(mle)} '
        'from MSE' + (f' (its {n_mle} run(s) that did not collapse)'
                      if n_mle < len(seeds) else '')
        + f' and below GRAM in {below} of {len(pairs)} (set, seed) '
        'pairs' + (f': GRAM recovers {1 - gram[0] / mle[0]:.0%} of what the '
                   'NLL loses.' if mle[0] < 0 else '.'))
  if have('faithful', 'beta_nll_1'):
    faithful, beta1, gram = g('faithful'), g('beta_nll_1'), g('gram')
    same_as_gram = abs(beta1[0] - gram[0]) <= max(NOISE_FLOOR, beta1[1],
                                                   gram[1])
    out.append(
        f'- **Cause.** beta-NLL with beta = 1, whose gradient for the mean '
        f'is the MSE\'s (up to a factor 1/2 that Adam ignores), is '
        f'{fmt(beta1)} from MSE'
        + (', the same as GRAM' if same_as_gram else
           f', {"less" if beta1[0] > gram[0] else "more"} than GRAM')
        + f'; the faithful model, whose trunk gets only the MSE\'s gradient, '
        f'is {fmt(faithful)} from MSE. '
        + ('So the cost is not the attention mask reweighting the mean\'s '
           'gradient: it comes from the variance head\'s gradient flowing '
           'into the trunk the mean shares; stopping that gradient '
           '(faithful) removes it.'
           if real(*beta1) and not real(*faithful) else
           'The variance head\'s gradient into the shared trunk does not '
           'explain the cost here.' if not real(*beta1) else
           'Even the faithful model loses PSNR here, so the shared trunk '
           'is not the whole story.'))
  for name, label in (('gram_warmup', 'an MSE warm-up of the first third'),
                      ('gram_noise_init', 'the log-variance head started at '
                       'the data\'s noise level (s = 2 ln(10/127.5))'),
                      ('gram_255', 'the mask computed in [0, 255] units')):
    if have(name):
      d = g(name, 'gram')
      out.append(f'- **GRAM with {label}**: {fmt(d)} against GRAM, '
                 + ('a real difference.' if real(*d) else
                    'within seed noise.'))
  return out


def stability_answer(results, losses, seeds, folders) -> list[str]:
  """Which runs collapsed (ended below bicubic), per model."""
  bad = {l: [s for s in seeds if collapsed(results, l, s)] for l in losses}
  if not any(bad.values()):
    return [f'- **Stability.** No run of any model ended more than '
            f'{COLLAPSE_DB:g} dB below bicubic on {" and ".join(folders)} '
            'or predicted a sigma of 0: none collapsed.']
  listing = '; '.join(
      f'{NAMES[l]} {len(b)} of {len(seeds)} (seed ' + ', '.join(
          f'{s}: ' + ', '.join(f'{f} {psnr(results, l, s, f):.2f} dB'
                               for f in folders) for s in b) + ')'
      for l, b in bad.items() if b)
  fine = [NAMES[l] for l, b in bad.items() if not b]
  bicubic = ', '.join(f'{f} {results["bicubic"][f]["psnr"]:.2f} dB'
                      for f in folders)
  return [f'- **Stability.** Runs that collapsed, i.e. ended more than '
          f'{COLLAPSE_DB:g} dB below bicubic ({bicubic}) on a set or '
          f'predicted a sigma of 0: {listing}. Every run of {", ".join(fine) or "no other model"} '
          'converged. Collapsed runs are left out of every mean, figure and '
          'answer on this page (their PSNR is in the per-seed table, all '
          'their numbers in the JSON).']


def best_answer(results, losses, seeds, folders) -> list[str]:
  """Which method gives the best uncertainty at equal PSNR: the models no
  other beats on both PSNR and AUSE (ranking, which no recalibration
  changes), from the highest PSNR down."""
  if 'mse' not in losses:
    return ['(Needs MSE.)']
  models = likelihood(results, losses, seeds)
  score = lambda l, block, key: statistics.fmean(
      v for f in folders
      for v in figure(results, l, seeds, f, block, 'rgb', key))
  point = {l: (gap(results, l, 'mse', seeds, folders)[0],
               score(l, 'uncertainty', 'ause')) for l in models}
  front = [l for l in models if not any(
      point[o][0] >= point[l][0] and point[o][1] <= point[l][1]
      and point[o] != point[l] for o in models)]
  front.sort(key=lambda l: -point[l][0])
  best_ause = min(models, key=lambda l: point[l][1])
  listing = '; '.join(
      f'{NAMES[l]} (PSNR {point[l][0]:+.2f} dB, AUSE {point[l][1]:.3f}, '
      f'Spearman {score(l, "uncertainty", "spearman"):.3f}, NLL after '
      f'sigma scaling {score(l, "uncertainty_sigma_scaling", "nll"):.3f})'
      for l in front)
  return [f'- **Best uncertainty at a given PSNR.** No model beats these on '
          f'both PSNR (from MSE) and AUSE (means over sets and seeds, RGB): '
          f'{listing}. Every other model is worse on both than one of them. '
          f'The best ranking of errors is {NAMES[best_ause]}\'s '
          f'(AUSE {point[best_ause][1]:.3f}, {point[best_ause][0]:+.2f} dB); '
          f'at the PSNR of MSE, {NAMES[front[0]]}\'s AUSE is '
          f'{point[front[0]][1]:.3f}'
          + (f', {point[front[0]][1] / point[best_ause][1]:.1f}x the best: '
             'there, keeping the PSNR costs ranking quality.'
             if point[front[0]][1] > 1.2 * point[best_ause][1] else '.')]


def recal_answer(results, losses, seeds, folders) -> list[str]:
  """Whether recalibration removes the differences in calibration."""
  models = likelihood(results, losses, seeds)
  if not models:
    return []
  cov = lambda l, f, block: statistics.fmean(
      figure(results, l, seeds, f, block, 'rgb', 'coverage_90'))
  spread = lambda block, key: [statistics.fmean(
      v for f in folders for v in figure(results, l, seeds, f, block, 'rgb',
                                         key)) for l in models]
  within = {l: all(abs(cov(l, f, 'uncertainty_sigma_scaling') - 0.9) <= 0.03
                   for f in folders) for l in models}
  ok = [NAMES[l] for l in models if within[l]]
  bad = [f'{NAMES[l]} (' + ', '.join(
      f'{f} {cov(l, f, "uncertainty_sigma_scaling"):.3f}' for f in folders)
         + ')' for l in models if not within[l]]
  before = spread('uncertainty', 'mace')
  after = spread('uncertainty_sigma_scaling', 'mace')
  iso = spread('uncertainty_isotonic', 'mace')
  ause = spread('uncertainty', 'ause')
  rho = spread('uncertainty', 'spearman')
  out = [f'- **Coverage after recalibration.** RGB coverage of the 90 % '
         f'interval before: {min(cov(l, f, "uncertainty") for l in models for f in folders):.3f}'
         f' to {max(cov(l, f, "uncertainty") for l in models for f in folders):.3f}. '
         'After sigma scaling fitted on the ten held-out SunHays80 images, it '
         'is within 0.03 of 0.9 on ' + ' and '.join(folders) + ' for '
         + (', '.join(ok) if ok else 'no model')
         + (f'; not for {", ".join(bad)}' if bad else '') + '.']
  if bad:
    fitted = lambda l, s: (results[l][s]['calibration']['sigma_scaling']
                           ['values']['rgb']['scale'])
    ratio = ', '.join(f'{f} {statistics.fmean(results[l][s]["folders"][f]["ideal_scale_rgb"] / fitted(l, s) for l in models for s in alive(results, l, seeds)):.2f}x'
                      for f in folders)
    out.append(
        '  Why not: the factor that calibrates the held-out images is not '
        'the one each test set needs: on average over models and seeds the '
        f'test sets need {ratio} the held-out factor. Where that is far from '
        '1, the test set differs from the training photographs '
        '(the held-out SunHays80 images are JPEG photographs of outdoor '
        'scenes, like the training set; Set5 and Set14 are PNG images of '
        'other content) and a factor fitted on the held-out images cannot '
        'calibrate it; the table of fitted against ideal factors below gives '
        'them per model.')
  out.append(
      f'- **What is left.** MACE across the likelihood models spans '
      f'{min(before):.3f}-{max(before):.3f} before, '
      f'{min(after):.3f}-{max(after):.3f} after sigma scaling and '
      f'{min(iso):.3f}-{max(iso):.3f} after isotonic recalibration: '
      + ('recalibration removes most of the differences in calibration, so '
         'those were not real. '
         if max(after) - min(after) < 0.5 * (max(before) - min(before)) else
         'recalibration does not remove the differences in calibration. ')
      + f'What it cannot change is ranking: AUSE spans {min(ause):.3f}-'
      f'{max(ause):.3f} and Spearman {min(rho):.3f}-{max(rho):.3f}, the '
      'same before and after; those differences are the real ones.')
  return out
