#!/usr/bin/env bash
# The GPU figures quoted in README and docs/benchmarks.md, in one script:
#   benchmarks/gpu_benchmarks.sh OUTDIR
# 1. train step per loss (fp32 and bf16) with MFU, and the PyTorch reference
#    in the same run (if torch is installed), at the paper's batch 16 and
#    at batch 128;
# 2. a real training run of configs/gram.py (input pipeline, metrics and
#    checkpointing included) on the built-in photos: the steps/s behind the
#    wall-time estimates of launch/reproduce_table1.sh;
# 3. steps/s of the real loop at steps_per_dispatch 1 and the platform's
#    default (bench_loop.py), the figure issue 13's 3x target is about;
#    the data path (bench_data.py: LR degradation, pipeline supply against
#    the step's demand);
# 4. predict, 256x256 -> 1024x1024, tiled and untiled (SKIP_PREDICT=1: not).
# Each part writes its JSON/log to OUTDIR; a failing part does not stop the
# others. QUICK=1 shrinks everything (a rehearsal on a CPU).
set -u
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if [[ "${QUICK:-0}" == 1 ]]; then
  B="--crop=32 --steps=1 --rounds=1"; S=2; L=4; T=3
  P="--size=32 --repeats=1"; D="--repeats=2 --steps=2"
else
  B="--steps=20 --rounds=3"; S=16; L=128; T=600
  P="--size=256 --repeats=3"; D=""
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) \
  > "$out/gpu.txt" 2>&1
python3 -c 'import jax; print(jax.__version__, jax.devices())' >> "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

echo "== train step, float32, batch $S, with the PyTorch reference"
python3 benchmarks/bench_train.py $B --batch=$S \
  --json="$out/train_fp32.json" --label=fp32 2>&1 | tail -12
echo "== train step, float32 and bfloat16, batch $L"
python3 benchmarks/bench_train.py --losses=mse,gram $B --batch=$L \
  --json="$out/train_fp32_b$L.json" --label=fp32 2>&1 | tail -7
python3 benchmarks/bench_train.py --losses=mse,gram $B --batch=$L \
  --dtype=bfloat16 --reference=none --json="$out/train_bf16_b$L.json" \
  --label=bf16 2>&1 | tail -4
echo "== a real run: configs/gram.py on the built-in photos"
rm -rf /tmp/gram_gpu_run
timeout 240 python3 -m gramjax.main --config=configs/gram.py \
  --workdir=/tmp/gram_gpu_run --config.data.train_dir=builtin:skimage \
  --config.total_steps=$T --config.log_every=$(( T > 200 ? 200 : 1 )) \
  --config.checkpoint_every=100000 --config.tensorboard=False \
  > "$out/train_run.log" 2>&1
tail -4 "$out/train_run.log"
cp /tmp/gram_gpu_run/metrics.jsonl "$out/train_run_metrics.jsonl" 2>/dev/null
echo "== the real loop, steps per dispatch 1 and the default, batch 16"
python3 benchmarks/bench_loop.py --config=configs/gram.py --ks=1,0 \
  --steps=$(( T > 200 ? 2000 : 8 )) --log_every=$(( T > 200 ? 200 : 2 )) \
  --rounds=$(( T > 200 ? 2 : 1 )) --json="$out/loop.json" \
  --config.data.train_dir=builtin:skimage 2>&1 | tail -4
echo "== a profile of the real loop (per-step host work, pipeline rate)"
timeout 300 python3 benchmarks/profile_loop.py --config=configs/gram.py \
  --steps=$(( T > 200 ? 500 : 4 )),$(( T > 200 ? 600 : 6 )) -- \
  --config.data.train_dir=builtin:skimage --config.evals={} \
  --config.best_metric= > "$out/profile.txt" 2>&1
head -24 "$out/profile.txt"; tail -2 "$out/profile.txt"
echo "== data path"
python3 benchmarks/bench_data.py $D > "$out/data.txt" 2>&1
cat "$out/data.txt"
if [[ ${SKIP_PREDICT:-0} != 1 ]]; then
  echo "== predict"
  python3 benchmarks/bench_predict.py $P --json="$out/predict.json" 2>&1 | tail -5
fi
