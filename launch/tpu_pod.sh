#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice (e.g. v4-32: 4 hosts x 4 chips): copy
# this checkout to every worker, install it there, and start the same
# training command on all workers at once (one process per host; JAX finds
# the other hosts through the TPU metadata).
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]
#   e.g. launch/tpu_pod.sh my-v4-32 us-central2-b configs/gram.py \
#          /mnt/shared/runs/gram --config.batch_size=64 \
#          --config.data.train_dir=/mnt/shared/DIV2K/prepared_x4
#
# Run it from your workstation (gcloud installed and authenticated). The
# steps, each on every worker (--worker=all):
#   1. copy: a tarball of this checkout as it is (the files git tracks or
#      would track, with uncommitted changes) to ~/REMOTE_DIR.tar.gz;
#   2. set up: unpack into ~/REMOTE_DIR, a virtual environment in
#      ~/REMOTE_DIR-venv (Python >= 3.11; made with uv where the system
#      python3 is older), pip install -e '.[tpu]';
#   3. start: the training in the background (nohup), each worker logging
#      to ~/REMOTE_DIR-train.log and writing its process id to
#      ~/REMOTE_DIR-train.pid; the script returns once all have started.
# Re-running the same line resumes from WORKDIR's latest checkpoint.
#
# WORKDIR must be one folder that all workers share, at the same absolute
# path: a Filestore/NFS mount, or a Cloud Storage bucket mounted with
# gcsfuse (gcsfuse --implicit-dirs --rename-dir-limit=1000000 BUCKET DIR:
# orbax renames a checkpoint's folder when it is complete). gs:// paths are
# refused: the training writes WORKDIR through local file operations. The
# data (config.data.train_dir) must exist on every worker as well.
#
# Environment: PROJECT (gcloud --project), REMOTE_DIR (default gramjax),
# SETUP=0 (skip step 2 when the workers are already set up), DRY_RUN=1
# (print the gcloud commands instead of running them; needs no gcloud).
#
# Internal: the workers run `launch/tpu_pod.sh --worker-setup` and
# `launch/tpu_pod.sh --worker-start CONFIG WORKDIR [ARGS]` from the copy.
set -euo pipefail

remote_dir=${REMOTE_DIR:-gramjax}
if ! [[ $remote_dir =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "error: REMOTE_DIR='$remote_dir' must be a plain folder name (under ~)" >&2
  exit 64
fi

usage() {
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]" >&2
  echo "  (env: PROJECT, REMOTE_DIR, SETUP=0, DRY_RUN=1)" >&2
}

# --- on each worker ---------------------------------------------------------

worker_setup() {  # Runs in ~/REMOTE_DIR on a worker, after unpacking.
  local venv=$HOME/$remote_dir-venv
  if [[ ! -x $venv/bin/python ]]; then
    if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' &&
        python3 -m venv "$venv"; then
      :
    else
      echo "worker $(hostname): python3 is older than 3.11 or has no venv; using uv" >&2
      rm -rf "$venv"
      if ! command -v uv >/dev/null && [[ ! -x $HOME/.local/bin/uv ]]; then
        python3 -m pip install --user --quiet uv ||
          curl -LsSf https://astral.sh/uv/install.sh | sh
      fi
      PATH=$HOME/.local/bin:$PATH uv venv --seed --python 3.11 "$venv"
    fi
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e '.[tpu]'
  echo "worker $(hostname): set up in $PWD ($("$venv/bin/python" --version))"
}

metadata() {  # A TPU VM's instance attribute from the metadata server.
  curl -sf --max-time 10 -H 'Metadata-Flavor: Google' \
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1"
}

worker_start() {  # Runs in ~/REMOTE_DIR on a worker.
  local config=$1 workdir=$2
  shift 2
  local log=$HOME/$remote_dir-train.log pidfile=$HOME/$remote_dir-train.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "worker $(hostname): a training is already running (pid $(cat "$pidfile")); stop it first" >&2
    return 1
  fi
  # gramjax.state.distributed takes its TPU-pod path (jax.distributed.initialize)
  # when TPU_WORKER_HOSTNAMES lists several hosts. A GCE TPU VM keeps that
  # list in its metadata only, so it is exported here from there, with this
  # worker's id in TPU_WORKER_ID (JAX reads both together; older JAX
  # releases exported the same two variables themselves).
  if [[ -z ${TPU_WORKER_HOSTNAMES:-} ]]; then
    local endpoints
    if endpoints=$(metadata worker-network-endpoints) && [[ -n $endpoints ]]; then
      # Entries are 'host' or 'name:id:ip'; keep the last field.
      TPU_WORKER_HOSTNAMES=$(tr ',' '\n' <<<"$endpoints" | awk -F: '{print $NF}' | paste -sd, -)
      TPU_WORKER_ID=$(metadata agent-worker-number)
      export TPU_WORKER_HOSTNAMES TPU_WORKER_ID
    fi
  fi
  mkdir -p "$workdir"
  echo "=== $(date '+%F %T') $(hostname) worker ${TPU_WORKER_ID:-?} ===" >>"$log"
  nohup setsid "$HOME/$remote_dir-venv/bin/python" -m gramjax.main \
    --config="$config" --workdir="$workdir" "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "worker $(hostname) (${TPU_WORKER_ID:-?}): started pid $!, log $log"
}

case ${1:-} in
  --worker-setup)
    worker_setup
    exit
    ;;
  --worker-start)
    shift
    if [[ $# -lt 2 ]]; then
      echo "usage: $0 --worker-start CONFIG WORKDIR [--config.key=value ...]" >&2
      exit 64
    fi
    worker_start "$@"
    exit
    ;;
esac

# --- on your workstation ----------------------------------------------------

if [[ $# -lt 4 ]]; then
  usage
  exit 64
fi
tpu=$1
zone=$2
config=$3
workdir=$4
shift 4
dry_run=${DRY_RUN:-0}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ! -f $config ]]; then
  echo "error: config file '$config' not found" >&2
  exit 66
fi
config_abs=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
case $config_abs in
  "$repo"/*) config=${config_abs#"$repo"/} ;;  # As the workers see it.
  *)
    echo "error: CONFIG must be inside the repository ($repo): only it is copied" >&2
    exit 66
    ;;
esac
case $workdir in
  gs://*)
    echo "error: WORKDIR=$workdir: mount the bucket on every worker (gcsfuse) and pass the mount's path" >&2
    exit 64
    ;;
  /*) ;;
  *)
    echo "error: WORKDIR=$workdir must be an absolute path that every worker shares" >&2
    exit 64
    ;;
esac
if [[ $dry_run != 1 ]] && ! command -v gcloud >/dev/null; then
  echo "error: gcloud not found; install the Google Cloud CLI (https://cloud.google.com/sdk) or use DRY_RUN=1" >&2
  exit 69
fi

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone" --worker=all)
if [[ -n ${PROJECT:-} ]]; then
  where+=(--project="$PROJECT")
fi
quote() {  # The words, each single-quoted where it needs it, on one line.
  local word sq="'" out=()
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//$sq/$sq\\$sq$sq}'")
    fi
  done
  echo "${out[*]}"
}
run() {  # Prints the command; runs it unless DRY_RUN=1.
  quote "$@"
  if [[ $dry_run != 1 ]]; then
    "$@"
  fi
}

tarball=$(mktemp "${TMPDIR:-/tmp}/gramjax-XXXXXX")
trap 'rm -f "$tarball"' EXIT
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  # The files git tracks or would track (not .gitignore'd), as they are now.
  (
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do
        if [[ -f $f ]]; then
          printf '%s\0' "$f"
        fi
      done | tar --null -T - -czf "$tarball"
  )
else
  tar -C "$repo" --exclude=.venv --exclude=.git --exclude=workdirs -czf "$tarball" .
fi

# Each remote command line is built from shell-quoted words (%q), so config
# overrides with spaces or quotes arrive on the workers unchanged.
dir_q=$(printf '%q' "$remote_dir")
setup="mkdir -p $dir_q && tar -xzf $dir_q.tar.gz -C $dir_q && cd $dir_q"
if [[ ${SETUP:-1} != 0 ]]; then
  setup+=" && REMOTE_DIR=$dir_q bash launch/tpu_pod.sh --worker-setup"
fi
start="cd $dir_q && REMOTE_DIR=$dir_q $(printf '%q ' bash launch/tpu_pod.sh --worker-start "$config" "$workdir" "$@")"
start=${start% }

echo "# 1/3 copy the checkout to every worker of $tpu"
run "${gcloud_tpu[@]}" scp "$tarball" "$tpu:$remote_dir.tar.gz" "${where[@]}"
echo "# 2/3 unpack (and install) on every worker"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --command="$setup"
echo "# 3/3 start training on every worker"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --command="$start"

follow=("${gcloud_tpu[@]}" ssh "$tpu" --zone="$zone" --worker=0)
if [[ -n ${PROJECT:-} ]]; then
  follow+=(--project="$PROJECT")
fi
if [[ $dry_run == 1 ]]; then
  echo
  echo "(DRY_RUN=1: nothing was run)"
  exit 0
fi
cat <<EOF

Training started on every worker of $tpu; checkpoints and metrics in $workdir.
  follow worker 0: $(quote "${follow[@]}" --command="tail -f ~/$remote_dir-train.log")
  stop all:        $(quote "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" --command="kill -9 \$(cat ~/$remote_dir-train.pid)")
  (SIGKILL stops at once; a plain kill (SIGTERM) saves a checkpoint first.
  The same launch line resumes from the latest checkpoint; SETUP=0 skips
  the install.)
EOF
