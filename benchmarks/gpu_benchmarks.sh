#!/usr/bin/env bash
# The GPU figures quoted in README and docs/benchmarks.md, in one script:
#   benchmarks/gpu_benchmarks.sh OUTDIR
# 1. train step per loss (fp32 and bf16) with MFU, and the PyTorch reference
#    in the same run (if torch is installed);
# 2. a real training run of configs/gram.py (input pipeline, metrics and
#    checkpointing included) on the built-in photos: the steps/s behind the
#    wall-time estimates of launch/reproduce_table1.sh;
# 3. predict, 256x256 -> 1024x1024, tiled and untiled.
# Each part writes its JSON/log to OUTDIR; a failing part does not stop the
# others. QUICK=1 shrinks everything (a rehearsal on a CPU).
set -u
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if [[ "${QUICK:-0}" == 1 ]]; then
  B="--batch=2 --crop=32 --steps=1 --rounds=1"; T=3; P="--size=32 --repeats=1"
else
  B="--steps=20 --rounds=3"; T=300; P="--size=256 --repeats=3"
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) \
  > "$out/gpu.txt" 2>&1
python3 -c 'import jax; print(jax.__version__, jax.devices())' >> "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

echo "== train step, float32, with the PyTorch reference"
python3 benchmarks/bench_train.py --losses=mse,nll,gram,gram_vjp $B \
  --json="$out/train_fp32.json" --label=fp32 2>&1 | tail -12
echo "== train step, bfloat16 compute"
python3 benchmarks/bench_train.py --losses=mse,gram $B --dtype=bfloat16 \
  --reference=none --json="$out/train_bf16.json" --label=bf16 2>&1 | tail -6
echo "== a real run: configs/gram.py on the built-in photos"
rm -rf /tmp/gram_gpu_run
timeout 240 python3 -m gramjax.main --config=configs/gram.py \
  --workdir=/tmp/gram_gpu_run --config.data.train_dir=builtin:skimage \
  --config.total_steps=$T --config.log_every=$(( T > 100 ? 100 : 1 )) \
  --config.checkpoint_every=100000 --config.tensorboard=False \
  > "$out/train_run.log" 2>&1
tail -4 "$out/train_run.log"
cp /tmp/gram_gpu_run/metrics.jsonl "$out/train_run_metrics.jsonl" 2>/dev/null
echo "== predict"
python3 benchmarks/bench_predict.py $P --json="$out/predict.json" 2>&1 | tail -5
