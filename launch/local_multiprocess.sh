#!/usr/bin/env bash
# Rehearse a multi-host run on one machine: N CPU processes on 127.0.0.1
# that find each other through jax.distributed exactly as the hosts of a
# cluster do (gloo collectives, the data sharded per process, checkpoints
# written jointly).
#
#   launch/local_multiprocess.sh N CONFIG WORKDIR [--config.key=value ...]
#   e.g. launch/local_multiprocess.sh 2 configs/demo.py workdirs/rehearsal \
#          --config.total_steps=40 --config.checkpoint_every=10
#
# Process i logs to WORKDIR/process_i.log (appended). The script waits for
# all of them; if one fails it stops the others and exits with that status.
# SIGTERM/SIGINT (Ctrl-C) stop the whole group. Re-running the same line
# resumes from WORKDIR's latest checkpoint.
#
# Python: the repository's own .venv/bin/python when it exists (so the
# script works without activating the venv), else the python on PATH;
# PYTHON=/path/to/python overrides both.
#
# Environment: PORT (coordinator port; default: a free one), PYTHON
# (default: see above), LOCAL_DEVICES (CPU devices per process, default 1:
# set 4 to rehearse hosts with 4 accelerators each), GRACE (seconds between
# SIGTERM and SIGKILL when stopping the group, default 10).
set -euo pipefail

usage() {
  echo "usage: $0 N CONFIG WORKDIR [--config.key=value ...]" >&2
  echo "  starts N CPU processes on 127.0.0.1 (logs: WORKDIR/process_<i>.log)" >&2
}

if [[ $# -lt 3 ]]; then
  usage
  exit 64
fi
if (( BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1) )); then
  echo "error: needs bash >= 5.1 (wait -n -p), this is $BASH_VERSION" >&2
  exit 69
fi
n=$1
config=$2
workdir=$3
shift 3
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
  echo "error: N='$n' must be a positive number of processes" >&2
  usage
  exit 64
fi
grace=${GRACE:-10}
if ! [[ $grace =~ ^[0-9]+$ ]]; then
  echo "error: GRACE='$grace' must be a number of seconds" >&2
  exit 64
fi
local_devices=${LOCAL_DEVICES:-1}
if ! [[ $local_devices =~ ^[1-9][0-9]*$ ]]; then
  echo "error: LOCAL_DEVICES='$local_devices' must be a positive integer" >&2
  exit 64
fi
if [[ ! -f $config ]]; then
  echo "error: config file '$config' not found" >&2
  exit 66
fi
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# Without PYTHON: the repository's venv, which has absl, jax and gramjax
# whether or not it is activated; the python on PATH otherwise.
if [[ -n ${PYTHON:-} ]]; then
  python=$PYTHON
elif [[ -x $repo/.venv/bin/python ]]; then
  python=$repo/.venv/bin/python
else
  python=python
fi

# Port 0 asks the kernel for a free port; it is released again at once and
# taken by process 0's coordinator a moment later.
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

pids=()
# Stops the processes still running: SIGTERM, then SIGKILL after GRACE
# seconds. (JAX's distributed runtime catches SIGTERM as a preemption notice
# and keeps running, so the SIGKILL is what ends a process stuck in a
# collective whose peer has died.) Callers send its stderr to /dev/null to
# hide bash's "Killed" job notices.
stop_all() {
  local pid deadline=$((SECONDS + grace))
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  while [[ -n $(jobs -pr) ]] && ((SECONDS < deadline)); do
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait || true
}
on_signal() {
  echo "launch: got SIG$1, stopping all $n processes" >&2
  trap - TERM INT
  stop_all 2>/dev/null
  exit "$2"
}
# Background children of a non-interactive shell ignore SIGINT, so a Ctrl-C
# is passed on as SIGTERM.
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT

echo "launch: $n processes, coordinator 127.0.0.1:$port, $local_devices CPU device(s) each"
for ((i = 0; i < n; i++)); do
  log=$workdir/process_$i.log
  echo "=== $(date '+%F %T') process $i of $n ===" >>"$log"
  JAX_PLATFORMS=cpu \
  XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$local_devices" \
  JAX_COORDINATOR_ADDRESS=127.0.0.1:$port \
  JAX_NUM_PROCESSES=$n \
  JAX_PROCESS_ID=$i \
    "$python" -m gramjax.main --config="$config" --workdir="$workdir" "$@" \
    >>"$log" 2>&1 </dev/null &
  pids+=("$!")
done
echo "launch: logs in $workdir/process_{0..$((n - 1))}.log (follow: tail -f $workdir/process_0.log)"

declare -A index_of
for i in "${!pids[@]}"; do
  index_of[${pids[$i]}]=$i
done
for ((left = n; left > 0; left--)); do
  finished=''
  status=0
  wait -n -p finished 2>/dev/null || status=$?
  if [[ $status -ne 0 ]]; then
    i='?'
    if [[ -n $finished ]]; then
      i=${index_of[$finished]:-?}
    fi
    echo "launch: process $i exited with status $status; stopping the others" >&2
    echo "launch: last lines of $workdir/process_$i.log:" >&2
    tail -n 20 "$workdir/process_$i.log" >&2 || true
    trap - TERM INT
    stop_all 2>/dev/null
    exit "$status"
  fi
done
echo "launch: all $n processes finished; metrics in $workdir/metrics.jsonl"
