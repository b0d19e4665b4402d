#!/usr/bin/env bash
# Train on one machine with every local accelerator (JAX uses all of them;
# the global batch is split over the devices).
#
#   launch/single_host.sh CONFIG WORKDIR [--config.key=value ...]
#   e.g. launch/single_host.sh configs/gram.py runs/gram \
#          --config.data.train_dir=data/DIV2K/DIV2K_train_HR
#
# Re-running the same line resumes from WORKDIR's latest checkpoint. The log
# is appended to WORKDIR/train.log as well as printed.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 64
fi
config=$1
workdir=$2
shift 2
if [[ ! -f $config ]]; then
  echo "error: config file '$config' not found" >&2
  exit 66
fi
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
python -m gramjax.main --config="$config" --workdir="$workdir" "$@" \
  2>&1 | tee -a "$workdir/train.log"
exit "${PIPESTATUS[0]}"
