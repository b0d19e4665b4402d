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

from benchmarks import study_answers as answers
from benchmarks import study_tables as tables
from benchmarks.study_tables import NAMES, collapsed, likelihood
from gramjax.metrics import uncertainty
from gramjax.reporting import figures

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



def skipped_steps(workdir: pathlib.Path) -> tuple[int, int]:
  """(steps the NaN guard skipped, the first of them; -1 if none), from
  the run's metrics.jsonl (written only under ``nan_policy='skip'``)."""
  rows = [json.loads(line) for line in
          (workdir / 'metrics.jsonl').read_text().splitlines() if line]
  counted = [r for r in rows if 'skipped_steps' in r]
  if not counted:
    return 0, -1
  return counted[-1]['skipped_steps'], counted[-1]['first_skipped_step']



def reliability_figures(results, losses, seed, folders, fig_dir
                        ) -> list[tuple[str, pathlib.Path]]:
  """Per folder, the RGB reliability diagrams of seed ``seed``'s likelihood
  models before and after sigma scaling (matplotlib)."""
  models = likelihood(results, losses, [seed])  # Not collapsed at seed.
  expected = list(1.0 - uncertainty.DEFAULT_ALPHAS)
  written = []
  for f in folders:
    for block, title in (('raw', 'before recalibration'),
                         ('sigma_scaling', 'after sigma scaling')):
      curves = {NAMES[l]: (expected, results[l][seed]['curves'][f][block])
                for l in models}
      path = figures.reliability_diagram(
          curves, fig_dir / f'reliability_{f}_{block}.png',
          title=f'{f}, RGB, {title}')
      written.append((f'Reliability, {f} (RGB), {title}, seed {seed}', path))
  return written


@dataclasses.dataclass
class Run:
  """What the page says about the run besides its results."""
  command: str                  # The command line that reproduces it.
  config_path: str              # e.g. configs/cpu_scale.py.
  config: object                # Its config (of the first loss).
  variants: dict                # configs/cpu_scale.py's VARIANTS.
  train_dir: str
  shortened: bool               # --steps given: a smoke test.
  losses: list
  seeds: list
  names: list                   # The test folders.
  walls: dict                   # {(loss, seed): training seconds}.
  trained_at: dict              # {(loss, seed): commit}.
  skipped: dict                 # {(loss, seed): (steps skipped, first)}.
  eval_s: float
  total_s: float
  n_params: int
  commit: str = dataclasses.field(
      default_factory=lambda: sh('git', 'rev-parse', '--short', 'HEAD')
      or 'unknown')
  dirty: bool = dataclasses.field(default_factory=lambda: bool(
      sh('git', 'status', '--porcelain', '--untracked-files=no')))


def _intro(results, run: Run, out: pathlib.Path) -> list[str]:
  """The title, how the page was made, and the answers."""
  args = (results, run.losses, run.seeds, run.names)
  commits = sorted(set(run.trained_at.values()))
  return [
      '# Table I at CPU scale: what GRAM costs and buys',
      '',
      f'Produced by `{run.command}` from a clean checkout of commit '
      f'`{run.commit}`{" (with uncommitted changes!)" if run.dirty else ""} '
      f'on {datetime.date.today().isoformat()} (models trained at commit'
      f'{"s" if len(commits) > 1 else ""} '
      f'{", ".join(f"`{c}`" for c in commits)}); '
      'rerun that command to regenerate this page, its JSON (`' +
      out.with_suffix('.json').name + '`) and its pictures. Every number '
      'and every sentence below comes from that run.',
      '',
      '## Answers',
      '',
      *answers.stability_answer(*args),
      *answers.cost_answer(*args),
      *answers.best_answer(*args),
      *answers.recal_answer(*args),
      '',
  ]


def _model_and_training(run: Run) -> list[str]:
  """The setup's first bullets: the model, its training, skipped steps."""
  config, m, opt = run.config, run.config.model, run.config.optimizer
  skipped = ', '.join(
      f'{NAMES[l]} seed {s}: {n} (the first at step {first})'
      for (l, s), (n, first) in run.skipped.items() if n)
  return [
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
      f'except {config.data.holdout} held out (`data.holdout`) with flips '
      'and 90/180/270 rotations, LR by MATLAB bicubic on the device, '
      f'Adam({opt.b1}, {opt.b2}), lr {opt.lr_values[0]:g} then '
      f'{opt.lr_values[1]:g} from step {opt.lr_boundaries[0]}. Seeds '
      f'{", ".join(map(str, run.seeds))} (initialisation and data order).',
      '- Non-finite steps: the on-device guard drops a step whose loss or '
      f'gradients are not finite; with `nan_policy={config.nan_policy!r}` '
      'training goes on. Steps dropped: '
      + (f'{skipped}; every other run none.' if skipped else
         'none in any run.'),
  ]


def _setup(run: Run) -> list[str]:
  """The Setup section: model, training, variants, evaluation, time."""
  v, walls = run.variants, run.walls.values()
  return [
      '## Setup',
      '',
      *_model_and_training(run),
      '- Variants (`configs/cpu_scale.py`): ' + '; '.join(
          f'{NAMES[l]}: `{v[l][0]}`' + (f' {v[l][1]}' if v[l][1] else '')
          + (f' with {v[l][2]}' if v[l][2] else '')
          for l in run.losses) + '. MSE (eq. 1), MLE = Gaussian NLL (eq. '
      '3), GRAM (eq. 4), loss-rescaling (eq. 5), beta-NLL (Seitzer et al. '
      '2022), faithful (Stirn et al. 2023: MSE for the mean, the NLL for '
      'the variance head, which reads a stop-gradient copy of the '
      'features).',
      f'- Evaluation: {", ".join(run.names)}; x{run.config.model.scale} PSNR '
      '(dB)/SSIM on the Y channel, the `standard` convention of '
      'docs/evaluation.md (MATLAB bicubic LR rounded to uint8, shave 4 px, '
      '11x11 Gaussian SSIM), latest checkpoint. Uncertainty figures pooled '
      'over every pixel of a set, in grey levels; RGB (every channel, what '
      'the likelihood is trained on) is primary, Y assumes fully correlated '
      'channel errors.',
      '- Recalibration: sigma scaling and isotonic recalibration, each '
      f'fitted per model on the {run.config.data.holdout} SunHays80 images '
      'its training held out (`evaluate --calibrate_on=heldout`; '
      'docs/evaluation.md, "Recalibration").',
      f'- Hardware: {hardware()}.',
      f'- Wall time: training {fmt_s(sum(walls))} for {len(run.walls)} '
      f'models (about {fmt_s(statistics.fmean(walls))} each), evaluation '
      f'{fmt_s(run.eval_s)} in the run that wrote this page (evaluations of '
      'unchanged checkpoints are kept in each run\'s `study_eval.json`), '
      f'whole script {fmt_s(run.total_s)}.',
      '',
  ]


def _quality_tables(results, run: Run, channel: str, title: str
                    ) -> list[str]:
  """One uncertainty table per test folder."""
  return [line for f in run.names for line in (
      f'**{f}{title}**', '',
      tables.quality_table(results, run.losses, run.seeds, f, channel), '')]


def _tables(results, run: Run) -> list[str]:
  """Table I, per seed, the uncertainty before/after recalibration, Y."""
  args = (results, run.losses, run.seeds, run.names)
  return [
      '## Table I format',
      '',
      f'PSNR (dB) / SSIM, mean ±standard deviation over {len(run.seeds)} '
      'seeds (over the runs that did not collapse, where the row says so); '
      '"vs MSE": the mean over seeds of the difference from the MSE model '
      'trained with the same seed.',
      '',
      tables.table_one(*args), '', 'PSNR per seed:', '',
      tables.per_seed_table(*args), '',
      '## Uncertainty before and after recalibration (RGB)',
      '',
      'Gaussian NLL (nats per value, grey levels), AUSE (Ilg et al. 2018; '
      'lower is better), Spearman correlation of sigma and |error|, AUCE '
      '(Gustafsson et al. 2020) and MACE (uncertainty-toolbox) (0 is '
      'calibrated), coverage of the central 90 % interval, mean sigma over '
      'RMSE; then (s): after sigma scaling, (iso): after isotonic '
      'recalibration (its NLL is undefined). AUSE and Spearman do not change '
      'under either. Mean ±sd over the seeds whose run did not collapse; MSE '
      'has no trained variance head.',
      '',
      *_quality_tables(results, run, 'rgb', ''),
      'The sigma-scaling factor fitted on the held-out images against the '
      'factor that would have calibrated each test set on its own (RGB; 1 '
      'is calibrated):',
      '', tables.scale_table(*args), '',
      '## The Y channel',
      '',
      'The correlation of the R, G and B errors measured on each set '
      '(`error_channel_correlation`), the RGB coverage of the 90 % interval '
      'and the Y channel\'s with its variance for fully correlated channel '
      'errors (the default, docs/evaluation.md), before and after sigma '
      'scaling (fitted on Y):',
      '', tables.y_table(*args), '',
      *_quality_tables(results, run, 'y', ', Y channel'),
  ]


def write_page(results, run: Run, out: pathlib.Path) -> pathlib.Path:
  """Writes ``out`` (Markdown), its JSON and its pictures; returns the
  pictures' folder."""
  fig_dir = out.parent / f'{out.stem}_figures'
  pictures = [f'![{title}]({os.path.relpath(path, out.parent)})'
              for title, path in reliability_figures(
                  results, run.losses, run.seeds[0], run.names, fig_dir)]
  doc = [*_intro(results, run, out), *_setup(run), *_tables(results, run),
         f'## Pictures (seed {run.seeds[0]})', '', '\n\n'.join(pictures), '']
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text('\n'.join(doc))
  key = lambda l, s: f'{l}_seed{s}'
  raw = {'commit': run.commit, 'dirty': run.dirty,
         'config': run.config_path, 'total_steps': run.config.total_steps,
         'seeds': run.seeds,
         'train_seconds': {key(*k): w for k, w in run.walls.items()},
         'skipped_steps': {key(*k): n for k, (n, _) in run.skipped.items()},
         'collapsed': [key(*k) for k in run.walls
                       if collapsed(results, *k)],
         'bicubic': results['bicubic'],
         'models': {l: {str(s): {k: v for k, v in results[l][s].items()
                                 if k != 'curves'} for s in run.seeds}
                    for l in run.losses}}
  out.with_suffix('.json').write_text(json.dumps(raw, indent=2))
  return fig_dir
