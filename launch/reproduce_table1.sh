#!/usr/bin/env bash
# Table I of the paper at full scale, in one command: DIV2K and the benchmark
# sets downloaded and prepared, the five models trained at the paper's
# settings (configs/{mse,mle,gram,loss_rescale,beta_nll}.py: SRResNet 16x64,
# batch 16 of 96 px crops, 3e5 steps), then the report on Set5, Set14,
# BSD100, Urban100 and DIV2K-valid (PSNR/SSIM on Y, uncertainty metrics,
# figures) in RUNS/table1.md.
#
#   launch/reproduce_table1.sh [RUNS]            (default runs/table1)
#   SLURM=1 launch/reproduce_table1.sh [RUNS]    (one 1-GPU job per model,
#                                                 and a report job after them)
#
# Run from anywhere; paths are relative to the repository root. Without
# SLURM the models train one after another on this machine's accelerators
# (launch/single_host.sh; each log in RUNS/<loss>/train.log). Run the same
# line again after an interruption: finished downloads are verified, not
# fetched again, the prepared data is kept, and every training resumes from
# its latest checkpoint (a finished one returns at once).
#
# Expected wall time, measured (benchmarks/gpu_benchmarks.sh, docs/
# benchmarks.md): on one NVIDIA H200 a real run of configs/gram.py trains at
# about 140 steps/s, so each model's 3e5 steps take about 35 minutes and all
# five about 3 hours, plus the download (about 4 GB) and the evaluation
# (tens of minutes). On the 2-core CPU of our development machine a GRAM
# step takes about 1.3 s: 4.5 days per model (docs/results.md uses a
# CPU-scale family instead).
#
# Environment:
#   DATA=data        where the datasets live (or go)
#   LOSSES="mse mle gram loss_rescale beta_nll"   configs/<name>.py to train
#   DOWNLOAD=0       skip the download (data already in DATA)
#   EVAL_DATA=...    comma-separated HR folders to evaluate on (default: the
#                    five sets under DATA)
#   EXTRA_ARGS=...   config overrides for every training (split on spaces),
#                    e.g. '--config.batch_size=64' for more GPUs per model
#   SLURM_ARGS=...   extra sbatch options for the training jobs
#   DRY_RUN=1        print the commands without running anything
set -euo pipefail

runs=${1:-runs/table1}
data=${DATA:-data}
losses=${LOSSES:-mse mle gram loss_rescale beta_nll}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dry=${DRY_RUN:-0}
read -r -a extra <<< "${EXTRA_ARGS:-}"
read -r -a slurm_args <<< "${SLURM_ARGS:-}"

run() {  # Print a command (shell-quoted), then run it unless DRY_RUN=1.
  printf '+' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  if [[ $dry != 1 ]]; then
    "$@"
  fi
}

for loss in $losses; do
  if [[ ! -f configs/$loss.py ]]; then
    echo "error: LOSSES: there is no configs/$loss.py" >&2
    exit 64
  fi
done
if [[ ${SLURM:-0} == 1 && $dry != 1 ]] && ! command -v sbatch > /dev/null; then
  echo "error: SLURM=1 but sbatch is not on PATH" >&2
  exit 69
fi

echo "== 1/3 data: DIV2K and the benchmark sets in $data" >&2
if [[ ${DOWNLOAD:-1} == 1 ]]; then
  run python -m gramjax.download --dataset=div2k,benchmark --dest="$data"
fi
train_dir=$data/DIV2K/prepared_x4
run python -m gramjax.prepare --input="$data/DIV2K/DIV2K_train_HR" --scale=4 \
  --output="$train_dir"

echo "== 2/3 training: $losses" >&2
[[ $dry == 1 ]] || mkdir -p "$runs"
deps=""
models=""
for loss in $losses; do
  args=(--config.data.train_dir="$train_dir" "${extra[@]}")
  if [[ ${SLURM:-0} == 1 ]]; then
    cmd=(sbatch --parsable --job-name="gramjax-$loss" --nodes=1
         --ntasks-per-node=1 --gpus-per-node=1
         --output="$runs/$loss-%j.out" "${slurm_args[@]}"
         launch/slurm_gpu.sbatch "configs/$loss.py" "$runs/$loss" "${args[@]}")
    if [[ $dry == 1 ]]; then
      run "${cmd[@]}"
      job="JOB_$loss"
    else
      run "${cmd[@]}" > "$runs/.job_$loss"
      job=$(cut -d';' -f1 < "$runs/.job_$loss")
      echo "submitted $loss as job $job" >&2
    fi
    deps="$deps:$job"
  else
    run launch/single_host.sh "configs/$loss.py" "$runs/$loss" "${args[@]}"
  fi
  models="${models:+$models,}$loss=$runs/$loss"
done

echo "== 3/3 report: $runs/table1.md" >&2
eval_data=${EVAL_DATA:-$data/benchmark/Set5/HR,$data/benchmark/Set14/HR,$data/benchmark/B100/HR,$data/benchmark/Urban100/HR,$data/DIV2K/DIV2K_valid_HR}
baseline=mse
if [[ " $losses " != *" mse "* ]]; then
  baseline=${losses%% *}
fi
report=(python -m gramjax.report --models="$models" --baseline="$baseline"
        --data="$eval_data" --out="$runs/table1.md")
if [[ ${SLURM:-0} == 1 ]]; then
  wrap=$(printf '%q ' "${report[@]}")
  run sbatch --parsable --job-name=gramjax-report --dependency="afterok$deps" \
    --nodes=1 --ntasks=1 --gpus=1 --time=04:00:00 \
    --output="$runs/report-%j.out" --wrap="$wrap"
  echo "the report job waits for the trainings; then see $runs/table1.md" >&2
else
  run "${report[@]}"
fi
