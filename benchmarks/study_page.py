"""The CPU-scale study's page (benchmarks/reproduce_cpu_scale.py): the run's
facts (``Run``), its reliability diagrams, and ``write_page``, which writes
docs/results.md and its JSON from the results and those facts."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess

import jax

import numpy as np
from scipy import stats

from benchmarks import study_answers as answers
from benchmarks import study_tables as tables
from benchmarks.study_stats import COLLAPSE_RULE, NAMES
from benchmarks.study_tables import CALIBRATION, alive, collapsed, likelihood
from gramjax.metrics import uncertainty

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sh(*cmd: str) -> str:
  try:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
  except OSError:
    return ''


def hardware() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return (f'{cpu}, {os.cpu_count()} cores visible, '
          f'{jax.devices()[0].platform} backend, Python '
          f'{platform.python_version()}, jax {jax.__version__}')


def fmt_s(seconds: float) -> str:
  seconds = int(round(seconds))
  return (f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600
          else f'{seconds // 60}m{seconds % 60:02d}s')



def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def reliability_figures(results, losses, seeds, folders, fig_dir
                        ) -> list[tuple[str, pathlib.Path]]:
  """Per folder (the calibration images first), the RGB reliability
  diagram of each likelihood model before and after sigma scaling: the
  mean over seeds of the observed coverage, shaded from the lowest to the
  highest seed."""
  plt = _pyplot()
  expected = 1.0 - np.asarray(uncertainty.DEFAULT_ALPHAS)
  written = []
  for f in [CALIBRATION, *folders]:
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.2), dpi=110,
                             sharey=True)
    for ax, block, title in ((axes[0], 'raw', 'before recalibration'),
                             (axes[1], 'sigma_scaling',
                              'after sigma scaling')):
      ax.plot([0, 1], [0, 1], color='0.6', linestyle='--',
              label='calibrated')
      for loss in likelihood(results, losses, seeds):
        curves = np.array([results[loss][s]['curves'][f][block]
                           for s in alive(results, loss, seeds)
                           if block in results[loss][s]['curves'].get(f, {})])
        if not curves.size:
          continue
        line, = ax.plot(expected, curves.mean(0), label=NAMES[loss])
        ax.fill_between(expected, curves.min(0), curves.max(0),
                        color=line.get_color(), alpha=0.2, linewidth=0)
      ax.set(xlim=(0, 1), ylim=(0, 1), title=title,
             xlabel='expected coverage of central interval')
    axes[0].set_ylabel('observed coverage (RGB)')
    axes[0].legend(loc='upper left', fontsize=7)
    name = 'calibration images (in sample)' if f == CALIBRATION else f
    fig.suptitle(f'{name}: mean over seeds, band = min-max over seeds')
    fig.tight_layout()
    path = fig_dir / f'reliability_{f}.png'
    fig.savefig(path)
    plt.close(fig)
    written.append((f'Reliability, {name}, RGB', path))
  return written


def interval_figure(results, losses, seeds, folders, fig_dir
                    ) -> tuple[str, pathlib.Path]:
  """Left: the split study's mean test risk against mean half-width, crc
  (filled) and constant width (hollow), per model, error bars = sd over
  seeds. Right: crc fitted on all the calibration images, its risk there
  (in sample) and on each test set."""
  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 4.2), dpi=110)
  models = [l for l in likelihood(results, losses, seeds)
            if tables.split(results, l, seeds, 'crc', 'mean_risk')]
  alpha = None
  for i, loss in enumerate(models):
    colour = f'C{i}'
    for method, face in (('crc', colour), ('constant_width', 'none')):
      w = tables.split(results, loss, seeds, method, 'mean_halfwidth_grey')
      r = tables.split(results, loss, seeds, method, 'mean_risk')
      left.errorbar(np.mean(w), np.mean(r), xerr=np.std(w, ddof=1) if
                    len(w) > 1 else 0, yerr=np.std(r, ddof=1) if len(r) > 1
                    else 0, fmt='o', color=colour, mfc=face,
                    label=f'{NAMES[loss]}' if method == 'crc' else None)
    alpha = results[loss][alive(results, loss, seeds)[0]]['conformal'][
        'alpha']
    where = [CALIBRATION, *folders]
    risks = [tables.values(results, loss, seeds, w, 'interval_crc', 'rgb',
                           'risk') for w in where]
    x = np.arange(len(where)) + (i - len(models) / 2) * 0.08
    right.errorbar(x, [np.mean(r) for r in risks],
                   yerr=[np.std(r, ddof=1) if len(r) > 1 else 0
                         for r in risks], fmt='o', color=colour,
                   label=NAMES[loss])
  for ax in (left, right):
    if alpha is not None:
      ax.axhline(alpha, color='0.4', linestyle='--', linewidth=1)
  if alpha is not None:        # crc's finite-sample floor at n.
    n = results[models[-1]][alive(results, models[-1], seeds)[0]][
        'conformal']['calibration_images']
    left.axhline((alpha * (n + 1) - 1) / n, color='0.4', linestyle=':',
                 linewidth=1)
  left.set(xlabel='mean half-width (grey levels)',
           ylabel='mean test risk (share of values outside)',
           title='within distribution: split study\n(filled: crc, hollow: '
           'constant width)')
  left.legend(fontsize=7)
  right.set_xticks(range(len(folders) + 1))
  right.set_xticklabels(['calibration\n(in sample)', *folders])
  right.set(ylabel='risk (share of values outside)',
            title='crc fitted on the calibration images')
  fig.tight_layout()
  path = fig_dir / 'conformal.png'
  fig.savefig(path)
  plt.close(fig)
  return ('Conformal intervals (RGB), mean ±sd over seeds; dashed: alpha, '
          'dotted: the calibration risk crc must reach, (alpha(n+1)-1)/n',
          path)


@dataclasses.dataclass
class Run:
  """What the page says about the run besides its results."""
  command: str                  # The command line that reproduces it.
  config_path: str              # e.g. configs/cpu_scale.py.
  config: object                # Its config (of the first loss).
  variants: dict                # configs/cpu_scale.py's VARIANTS.
  train_dir: str
  calibrate_on: str             # e.g. heldout[5:].
  shortened: bool               # --steps given: a smoke test.
  losses: list
  seeds: list
  names: list                   # The test folders.
  walls: dict                   # {(loss, seed): training seconds}.
  trained_at: dict              # {(loss, seed): commit}.
  eval_s: float                 # Evaluating, in the run writing the page.
  eval_made_s: float            # Evaluating, summed over when each was made.
  total_s: float
  n_params: int
  commit: str = dataclasses.field(
      default_factory=lambda: sh('git', 'rev-parse', '--short', 'HEAD')
      or 'unknown')
  dirty: bool = dataclasses.field(default_factory=lambda: bool(
      sh('git', 'status', '--porcelain', '--untracked-files=no')))


def _training_code(commits) -> str:
  """What changed under gramjax/ and configs/ (what training reads)
  between the oldest and the newest of the commits the models were
  trained at."""
  order = sh('git', 'rev-list', '--no-walk', '--date-order',
             *commits).split()
  if len(commits) < 2 or len(order) < 2:
    return ''
  changed = sh('git', 'diff', '--name-only', order[-1], order[0], '--',
               'gramjax', 'configs').split()
  span = f'`git diff {order[-1][:7]} {order[0][:7]}`'
  return ('; between the oldest and the newest of them nothing under '
          f'gramjax/ or configs/ changed ({span})' if not changed else
          '; between the oldest and the newest of them these files under '
          'gramjax/ or configs/ changed: ' + ', '.join(
              f'`{c}`' for c in changed) + f' ({span} shows how)')


def _intro(results, run: Run, out: pathlib.Path) -> list[str]:
  """The title, how the page was made, and the answers."""
  args = (results, run.losses, run.seeds, run.names)
  commits = sorted(set(run.trained_at.values()))
  return [
      '# Table I at CPU scale: what GRAM costs and buys, and intervals '
      'with a guarantee',
      '',
      f'Produced by `{run.command}` from a clean checkout of commit '
      f'`{run.commit}`{" (with uncommitted changes!)" if run.dirty else ""} '
      f'on {datetime.date.today().isoformat()} (models trained at commit'
      f'{"s" if len(commits) > 1 else ""} '
      f'{", ".join(f"`{c}`" for c in commits)}{_training_code(commits)}); '
      'rerun that command to regenerate this page, its JSON (`' +
      out.with_suffix('.json').name + '`) and its pictures. Every number '
      'and every sentence below comes from that run.',
      '',
      '**How to read it.** Models are compared only as paired per-seed '
      f'differences (the same seed trains both) over {len(run.seeds)} seeds, '
      'shown as mean [95 % t interval]; a difference is claimed only where '
      'its interval excludes 0, otherwise the page says "no difference '
      f'measured". With {len(run.seeds)} seeds the interval is wide (t = '
      f'{stats.t.ppf(0.975, max(1, len(run.seeds) - 1)):.2f} times the '
      'standard error): small differences cannot be resolved here, and the '
      'page says so rather than ranking them. "±" is the standard deviation '
      'over seeds.',
      '',
      '## Answers',
      '',
      *answers.stability(*args),
      *answers.cost(*args),
      *answers.ranking(*args),
      *answers.calibration(*args),
      *answers.conformal(*args),
      '',
  ]


def _setup(run: Run) -> list[str]:
  """The Setup section: model, training, selection, variants, evaluation,
  calibration, time."""
  config, m, opt = run.config, run.config.model, run.config.optimizer
  v, walls = run.variants, run.walls.values()
  val = next(iter(config.evals.values()))
  return [
      '## Setup',
      '',
      f'- Model: SRResNet x{m.scale}, {m.num_blocks} residual blocks x '
      f'{m.channels} channels, {m.first_kernel}x{m.first_kernel} first conv, '
      f'{m.head_kernel}x{m.head_kernel} heads, LeakyReLU({m.leaky_slope}), '
      f'{run.n_params / 1e6:.3f}M parameters (the paper: 16 x 64, 9x9 '
      'heads).',
      f'- Training: `{run.config_path}:<variant>`, {config.total_steps} steps'
      + (' (shortened with --steps: a smoke test, not a result)'
         if run.shortened else '')
      + f', batches of {config.batch_size} random {config.data.crop_size}x'
      f'{config.data.crop_size} HR crops of the {run.train_dir} photos '
      f'except {config.data.holdout} held out (`data.holdout`, recorded by '
      'name and content hash when training starts) with flips and '
      '90/180/270 rotations, LR by MATLAB bicubic on the device, '
      f'Adam({opt.b1}, {opt.b2}), lr {opt.lr_values[0]:g} then '
      f'{opt.lr_values[1]:g} from step {opt.lr_boundaries[0]}. Seeds '
      f'{", ".join(map(str, run.seeds))} (initialisation and data order). '
      'Non-finite steps are dropped by the on-device guard '
      f'(`nan_policy={config.nan_policy!r}`) and counted.',
      f'- Checkpoint selection: validation every {val["every"]} steps on '
      f'`{val["folder"]}` (held-out training-distribution images, never a '
      f'test set); the checkpoint with the best `{config.best_metric}` is '
      'the one evaluated.',
      f'- Collapse rule: {COLLAPSE_RULE}.',
      '- Variants (`configs/cpu_scale.py`, each the config keys it sets): '
      + '; '.join(f'{NAMES[l]}: ' + ', '.join(
          f'`{k}={val!r}`' for k, val in v[l].items()) for l in run.losses) + '. MSE (eq. 1), MLE = Gaussian NLL (eq. '
      '3), GRAM (eq. 4), loss-rescaling (eq. 5), beta-NLL (Seitzer et al. '
      '2022), faithful (Stirn et al. 2023: MSE for the mean, the NLL for '
      'the variance head, which reads a stop-gradient copy of the '
      'features).',
      f'- Evaluation: {", ".join(run.names)}; x{m.scale} PSNR (dB)/SSIM on '
      'the Y channel, the `standard` convention of docs/evaluation.md '
      '(MATLAB bicubic LR rounded to uint8, shave 4 px, 11x11 Gaussian '
      'SSIM). Uncertainty figures pooled over the pixels of a set (at most '
      '2^23 values per set, the same share of each image), in grey levels; '
      'RGB (what the likelihood is trained on) is primary. MACE is shown; '
      'AUCE (the same quantity on another grid) is in the JSON only.',
      f'- Calibration: every method fitted per model on `{run.calibrate_on}`'
      ' (the held-out images that neither trained nor validated; '
      '`evaluate --calibrate_on`), checked disjoint by content from the test '
      'sets: sigma scaling and isotonic recalibration, conformal risk '
      'control (crc) and RCPS at alpha = 0.1 (RCPS delta = 0.1), and the '
      'constant-width baseline (sigma = 1). The channel correlation that '
      'the Y variance uses is measured on the same images. The split study '
      'halves them at random 100 times (seeded).',
      f'- Hardware: {hardware()}.',
      f'- Wall time: training {fmt_s(sum(walls))} for {len(run.walls)} '
      f'models (about {fmt_s(statistics.fmean(walls))} each), evaluation '
      f'{fmt_s(run.eval_made_s)} when made (about '
      f'{fmt_s(run.eval_made_s / max(1, len(run.walls)))} per model; each '
      'is kept in its run\'s `study_eval.json` under a key holding its '
      'step, folders and a digest of the code that made it), '
      f'{fmt_s(run.eval_s)} in the run that wrote this page, whole script '
      f'{fmt_s(run.total_s)} in that run.',
      '',
  ]


def _tables(results, run: Run) -> list[str]:
  """Table I, per seed, paired differences, uncertainty, conformal, Y."""
  args = (results, run.losses, run.seeds, run.names)
  where = [CALIBRATION, *run.names]
  quality = [line for w in where for line in (
      f'**{"Calibration images (in sample)" if w == CALIBRATION else w}, '
      'RGB**', '', tables.quality_table(results, run.losses, run.seeds, w,
                                        'rgb'), '')]
  return [
      '## Table I format',
      '',
      'PSNR (dB) / SSIM, mean ±sd over the seeds whose run did not '
      'collapse; "vs MSE": the paired per-seed difference from the MSE '
      'model, mean [95 % interval].',
      '',
      tables.table_one(*args), '',
      'Per run: PSNR, and the training signals the collapse rule reads '
      '(mean training-batch PSNR in dB over the first and the last tenth of '
      'the logs, steps the guard dropped):', '',
      tables.per_seed_table(*args), '',
      '## Paired differences from GRAM',
      '',
      'Each model minus GRAM, paired by seed, mean [95 % interval], RGB; '
      'AUSE lower is better, Spearman higher, NLL after sigma scaling lower.',
      '', tables.paired_table(*args), '',
      '## Uncertainty before and after recalibration',
      '',
      'Gaussian NLL (nats per value, grey levels), AUSE (Ilg et al. 2018), '
      'Spearman correlation of sigma and |error|, MACE (uncertainty-toolbox; '
      '0 is calibrated), coverage of the central 90 % interval, mean sigma '
      'over RMSE; (s): after sigma scaling, (iso): after isotonic '
      'recalibration, both fitted on the calibration images. The first '
      'table is those images themselves (in sample: no shift), the others '
      'the test sets. Mean ±sd over seeds.',
      '',
      *quality,
      'The sigma-scaling factor fitted on the calibration images against '
      'the factor that would have calibrated each test set on its own (RGB):',
      '', tables.scale_table(*args), '',
      '## Conformal intervals',
      '',
      'Intervals `mean ± lambda * sigma` per value (constant width: '
      '`mean ± lambda` grey levels); the risk of an image is the share of '
      'its values outside. Within distribution: the split study among the '
      'calibration images (per seed the means over 100 random halvings; '
      'here mean ±sd over seeds; "constant - crc half-width": paired by '
      'seed, mean [95 % interval]):',
      '', tables.conformal_split_table(*args), '',
      'Under shift: crc fitted on all the calibration images, measured on '
      'them (in sample) and on each test set (RGB):',
      '', tables.shift_table(*args), '',
      '## The Y channel',
      '',
      'The correlation of the channels\' standardised errors e/sigma, '
      'measured on the calibration images (what the Y variance uses) and '
      'on each test set (shown, never used), and RGB against Y coverage '
      'after sigma scaling:',
      '', tables.y_table(*args), '',
  ]


def write_page(results, run: Run, out: pathlib.Path) -> pathlib.Path:
  """Writes ``out`` (Markdown), its JSON and its pictures; returns the
  pictures' folder."""
  fig_dir = out.parent / f'{out.stem}_figures'
  fig_dir.mkdir(parents=True, exist_ok=True)
  args = (results, run.losses, run.seeds, run.names, fig_dir)
  drawn = [*reliability_figures(*args)]
  if any(tables.split(results, l, run.seeds, 'crc', 'mean_risk')
         for l in likelihood(results, run.losses, run.seeds)):
    drawn.append(interval_figure(*args))
  for stale in set(fig_dir.glob('*.png')) - {p for _, p in drawn}:
    stale.unlink()              # The folder holds this page's pictures only.
  pictures = [f'![{title}]({os.path.relpath(path, out.parent)})'
              for title, path in drawn]
  doc = [*_intro(results, run, out), *_setup(run), *_tables(results, run),
         '## Pictures', '',
         'Each picture\'s numbers are in the JSON (`curves`, `conformal`, '
         '`interval_crc` of each model and seed).', '',
         '\n\n'.join(pictures), '']
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text('\n'.join(doc))
  key = lambda l, s: f'{l}_seed{s}'
  raw = {'commit': run.commit, 'dirty': run.dirty,
         'config': run.config_path, 'total_steps': run.config.total_steps,
         'seeds': run.seeds, 'calibrate_on': run.calibrate_on,
         'collapse_rule': COLLAPSE_RULE,
         'trained_at': {key(*k): c for k, c in run.trained_at.items()},
         'train_seconds': {key(*k): w for k, w in run.walls.items()},
         'collapsed': {key(*k): collapsed(results, *k) for k in run.walls
                       if collapsed(results, *k)},
         'bicubic': results['bicubic'],
         'models': {l: {str(s): results[l][s] for s in run.seeds}
                    for l in run.losses}}
  out.with_suffix('.json').write_text(json.dumps(raw, indent=1))
  return fig_dir
