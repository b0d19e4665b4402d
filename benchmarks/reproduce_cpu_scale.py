"""Table I at CPU scale, what GRAM costs and buys, and intervals with a
guarantee: trains ``configs/cpu_scale.py``'s study variants over three
seeds, evaluates each model's best checkpoint with the literature's
conventions, before and after every calibration method, and writes
docs/results.md.

    python benchmarks/reproduce_cpu_scale.py

(defaults: seeds 0, 1 and 2; training on ../shared/data/SunHays80 less the
25 images ``data.holdout`` keeps out: five validate while training and
pick the checkpoint, the other twenty (``cpu_scale.CALIBRATE_ON``) fit
every calibration and its split study; testing on ../shared/data/Set5 and
Set14; runs in runs/cpu_scale/; report in docs/results.md plus
docs/results.json and docs/results_figures/). Each training is
``python -m gramjax.main`` in a subprocess; run the script again after an
interruption and finished models are kept, an unfinished one resumes from
its last checkpoint, and finished evaluations are kept too unless the code
changed (``--reevaluate`` redoes them). ``--steps=N`` shortens every
training (a smoke test; the report then says so). ``--train_only`` stops
after training.
"""

from __future__ import annotations

import argparse
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

from benchmarks import study_eval
from benchmarks import study_page
from benchmarks.study_page import fmt_s, sh
from benchmarks.study_stats import NAMES, training_signals
from configs import cpu_scale
from gramjax.evaluation import folders as folders_lib
from gramjax.evaluation.protocol import Protocol
from gramjax.inference import predictor as inference
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


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--config', default='configs/cpu_scale.py')
  p.add_argument('--losses', default=','.join(cpu_scale.STUDY))
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--train_dir', default='../shared/data/SunHays80')
  p.add_argument('--data', default='../shared/data/Set5,../shared/data/Set14')
  p.add_argument('--calibrate_on', default=cpu_scale.CALIBRATE_ON,
                 help='the images every calibration is fitted on')
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
  evaluate = lambda l, s: study_eval.evaluate_model(
      workdir(l, s), folders, scale, args.reevaluate, args.calibrate_on)
  evaluated, _ = each(jobs, 'evaluating', evaluate)
  for (loss, seed), result in evaluated.items():
    result['training'] = training_signals(workdir(loss, seed),
                                          config.total_steps)
    results.setdefault(loss, {})[seed] = result
  run = study_page.Run(
      command=args.command, config_path=args.config, config=config,
      variants=cfg_mod.VARIANTS, train_dir=args.train_dir,
      calibrate_on=args.calibrate_on,
      shortened=bool(args.steps), losses=args.losses, seeds=args.seeds,
      names=[f.name for f in folders],
      walls={k: w for k, (w, _) in trained.items()},
      trained_at={k: c for k, (_, c) in trained.items()},
      eval_s=time.time() - eval_start, total_s=time.time() - started,
      eval_made_s=sum(r.get('eval_seconds', 0.0)
                      for r in evaluated.values()),
      n_params=sum(x.size for x in jax.tree.leaves(
          state_lib.build(config).params)))
  out = pathlib.Path(args.out)
  fig_dir = study_page.write_page(results, run, out)
  print(f'wrote {out}, {out.with_suffix(".json")} and {fig_dir}/',
        file=sys.stderr)


if __name__ == '__main__':
  main()
