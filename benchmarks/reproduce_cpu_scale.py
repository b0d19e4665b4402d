"""Table I at CPU scale, and what GRAM costs and buys: trains Table I's
losses and their siblings (``configs/cpu_scale.py``'s ten variants) over
three seeds, evaluates them with the literature's conventions before and
after recalibration, and writes docs/results.md.

    python benchmarks/reproduce_cpu_scale.py

(defaults: seeds 0, 1 and 2, training on ../shared/data/SunHays80 less the
ten images ``data.holdout`` keeps out, which fit each model's
recalibrations; evaluation on ../shared/data/Set5 and Set14; runs in
runs/cpu_scale/; report in docs/results.md plus docs/results.json and
docs/results_figures/). Each training is ``python -m gramjax.main`` in a
subprocess; run the script again after an interruption and finished models
are kept, an unfinished one resumes from its last checkpoint, and finished
evaluations are kept too (``--reevaluate`` redoes them). ``--steps=N``
shortens every training (a smoke test; the report then says so).
``--train_only`` stops after training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position
import jax
import numpy as np

from benchmarks import study_page
from benchmarks.study_page import fmt_s, sh
from benchmarks.study_tables import NAMES
from configs import cpu_scale
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation.protocol import Protocol
from gramjax.evaluation import recalibrate as recal_fit
from gramjax.inference import predictor as inference
from gramjax.metrics import recalibration
from gramjax.state import train_state as state_lib

def train(loss: str, seed: int, workdir: pathlib.Path, args
          ) -> tuple[float, str]:
  """Trains (or resumes) one model; returns its training wall time in
  seconds and the commit it was trained at, as recorded when it finished
  (kept across reruns)."""
  record = workdir / 'reproduce_wall.json'
  if record.exists():
    r = json.loads(record.read_text())
    return r['train_s'], r.get('commit', 'unknown')
  cmd = [sys.executable, '-m', 'gramjax.main',
         f'--config={args.config}:{loss}', f'--workdir={workdir}',
         f'--config.seed={seed}', f'--config.data.train_dir={args.train_dir}',
         '--config.data.sample_images=']
  if args.steps:
    cmd += [f'--config.total_steps={args.steps}',
            f'--config.checkpoint_every={max(1, args.steps // 2)}',
            f'--config.log_every={max(1, args.steps // 4)}',
            '--config.optimizer.lr_boundaries='
            f'({max(1, args.steps * 4 // 5)},)']
  workdir.parent.mkdir(parents=True, exist_ok=True)
  start = time.time()
  with open(workdir.parent / f'{workdir.name}.log', 'a') as log:
    rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                        check=False).returncode
  if rc != 0:
    sys.exit(f'error: training {loss} seed {seed} failed (exit {rc}); see '
             f'{workdir.parent / (workdir.name + ".log")}. Run this script '
             'again to resume.')
  wall = time.time() - start
  commit = sh('git', 'rev-parse', '--short', 'HEAD') or 'unknown'
  record.write_text(json.dumps({'train_s': wall, 'commit': commit}))
  return wall, commit


# Bump when what evaluate_model stores changes: cached evaluations of an
# older version are redone.
EVAL_VERSION = 2


def fit_all(predictor, workdir, folders, protocol) -> dict:
  """Each recalibration method fitted on the images the model's training
  held out (as recorded then), kept off the test folders by content."""
  fitted_on, images = recal_fit.calibration_images('heldout', workdir)
  fits = {m: recal_fit.fit_recalibration(predictor, images, protocol,
                                         method=m, fitted_on=fitted_on,
                                         quiet=True)
          for m in recalibration.METHODS}
  for recal in fits.values():
    recal_fit.check_disjoint(recal, folders)
  return fits


def recalibrate(fits, folders, measured, protocol) -> dict:
  """Adds to each folder's entry (``measured``: its ``FolderResults``) the
  figures after each fit and returns the fits and the reliability curves
  (RGB) per folder, before and after."""
  out = {'calibration': {}, 'curves': {f.name: {} for f in folders}}
  for method, recal in fits.items():
    out['calibration'][method] = folders_lib.calibration_summary(recal)
    for f in folders:
      folder = measured[f.name]
      folder.entry[f'uncertainty_{method}'] = folders_lib.calibrated_entry(
          folder, protocol, recal)
      res = folders_lib.pooled_residuals(folder.images, 'rgb')
      curves = out['curves'][f.name]
      curves[method] = recalibration.calibration_curve_after(
          recal.values['rgb'], res).observed.tolist()
      # The raw curve, and the factor that would have calibrated this
      # folder itself.
      curves['raw'] = recalibration.calibration_curve_after(
          recalibration.ChannelFit(1.0), res).observed.tolist()
      folder.entry['ideal_scale_rgb'] = float(
          np.sqrt(np.mean((res.err / res.sigma)**2)))
  return out


def evaluate_model(workdir: pathlib.Path, folders, scale: int,
                   fresh: bool) -> dict:
  """One trained model's latest checkpoint: PSNR/SSIM and (for likelihood
  models) every uncertainty figure on each test folder, before and after
  each recalibration method (``recalibrate``). Kept in
  WORKDIR/study_eval.json while the step, folders and EVAL_VERSION are the
  same (``fresh`` redoes it)."""
  step = inference.latest_step(workdir)
  key = {'version': EVAL_VERSION, 'step': step,
         'folders': [str(f.path) for f in folders]}
  cache = workdir / 'study_eval.json'
  if cache.exists() and not fresh:
    saved = json.loads(cache.read_text())
    if saved.get('key') == key:
      return saved['result']
  predictor = inference.load(workdir, step)
  protocol, fits = Protocol(scale), {}
  if predictor.predicts_uncertainty:
    try:
      fits = fit_all(predictor, workdir, folders, protocol)
    except ValueError:
      pass         # A diverged variance head: measured without it below.
  if fits:         # Y under the correlation measured on the held-out set.
    protocol = dataclasses.replace(
        protocol, y_correlation=fits['sigma_scaling'].y_correlation)
  run = lambda p: folders_lib.evaluate_folders(folders, protocol, p,
                                               quiet=True)
  try:
    measured = run(predictor)
    result = {'folders': folders_lib.entries(measured), 'curves': {}}
  except ValueError as e:
    # The uncertainty metrics refuse a sigma that is not finite and > 0
    # (a diverged variance head): measure the mean alone.
    result = {'folders': folders_lib.entries(
        run(predictor.without_uncertainty())), 'curves': {},
              'uncertainty_error': str(e)}
  if 'uncertainty_error' not in result and fits:
    result.update(recalibrate(fits, folders, measured, protocol))
  cache.write_text(json.dumps({'key': key, 'result': result}))
  return result


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--config', default='configs/cpu_scale.py')
  p.add_argument('--losses', default=','.join(cpu_scale.STUDY))
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--train_dir', default='../shared/data/SunHays80')
  p.add_argument('--data', default='../shared/data/Set5,../shared/data/Set14')
  p.add_argument('--runs', default='runs/cpu_scale')
  p.add_argument('--out', default='docs/results.md')
  p.add_argument('--steps', type=int, default=0,
                 help='override total_steps (smoke test); 0: the config\'s')
  p.add_argument('--train_only', action='store_true',
                 help='train (or resume) every model, then stop')
  p.add_argument('--reevaluate', action='store_true',
                 help='redo every evaluation (else kept in each run\'s '
                 'study_eval.json)')
  args = p.parse_args()
  args.command = 'python benchmarks/reproduce_cpu_scale.py' + ''.join(
      f' --{k}' if v is True else f' --{k}={v}'
      for k, v in vars(args).items() if v != p.get_default(k))
  args.losses = [l.strip() for l in args.losses.split(',') if l.strip()]
  bad = [l for l in args.losses if l not in NAMES]
  if bad:
    sys.exit(f'error: --losses: unknown {bad}; choose from {list(NAMES)}')
  args.seeds = [int(s) for s in args.seeds.split(',')]
  for path in [args.train_dir] + args.data.split(','):
    if not pathlib.Path(path).is_dir():
      sys.exit(f'error: {path}: no such folder (the reference images live in '
               '../shared/data beside the repository; pass --train_dir and '
               '--data to use others)')
  return args


def each(jobs, verb: str, work) -> tuple[dict, list[float]]:
  """``work(loss, seed)`` for every job with a progress line and an ETA;
  returns ({job: result}, seconds per job)."""
  out, times = {}, []
  for i, (loss, seed) in enumerate(jobs, 1):
    eta = (' ETA ' + fmt_s(statistics.fmean(times) * (len(jobs) - i + 1))
           if times else '')
    print(f'[{i}/{len(jobs)}] {verb} {loss} seed {seed}{eta}',
          file=sys.stderr, flush=True)
    t0 = time.time()
    out[(loss, seed)] = work(loss, seed)
    times.append(time.time() - t0)
  return out, times


def main():
  started = time.time()
  os.chdir(ROOT)
  args = parse_args()
  config, cfg_mod = inference.config_file(args.config, args.losses[0])
  if args.steps:  # As train() overrides them.
    config.total_steps = args.steps
    config.optimizer.lr_boundaries = (max(1, args.steps * 4 // 5),)
  runs = pathlib.Path(args.runs)
  # Every model has the same architecture: one persistent compilation cache
  # spares each evaluation (and training) recompiling per image shape.
  # (The environment for the trainings, jax.config for this process.)
  cache = os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                                str((runs / '.jax_cache').resolve()))
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', float(
      os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']))
  workdir = lambda l, s: runs / f'{l}_seed{s}'
  jobs = [(l, s) for s in args.seeds for l in args.losses]
  trained, _ = each(jobs, f'training ({config.total_steps} steps)',
                    lambda l, s: train(l, s, workdir(l, s), args))
  if args.train_only:
    return
  folders = folders_lib.resolve_folders(args.data)
  scale = config.model.scale
  results = {'bicubic': folders_lib.entries(folders_lib.evaluate_folders(
      folders, Protocol(scale), quiet=True))}
  eval_start = time.time()
  evaluated, _ = each(jobs, 'evaluating', lambda l, s: evaluate_model(
      workdir(l, s), folders, scale, args.reevaluate))
  for (loss, seed), result in evaluated.items():
    results.setdefault(loss, {})[seed] = result
  run = study_page.Run(
      command=args.command, config_path=args.config, config=config,
      variants=cfg_mod.VARIANTS, train_dir=args.train_dir,
      shortened=bool(args.steps), losses=args.losses, seeds=args.seeds,
      names=[f.name for f in folders],
      walls={k: w for k, (w, _) in trained.items()},
      trained_at={k: c for k, (_, c) in trained.items()},
      skipped={k: study_page.skipped_steps(workdir(*k)) for k in jobs},
      eval_s=time.time() - eval_start, total_s=time.time() - started,
      n_params=sum(x.size for x in jax.tree.leaves(
          state_lib.build(config).params)))
  out = pathlib.Path(args.out)
  fig_dir = study_page.write_page(results, run, out)
  print(f'wrote {out}, {out.with_suffix(".json")} and {fig_dir}/',
        file=sys.stderr)


if __name__ == '__main__':
  main()
