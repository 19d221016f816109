#!/usr/bin/env bash
# Trains on a Cloud TPU VM or pod slice: optionally creates it, installs this package on every
# worker, then runs the same `python3 -m experiments.train` on all workers, streaming output.
#
# Every worker runs the same command; transformer_jax.distributed.initialize finds the pod
# layout (worker ids, coordinator) from the TPU metadata, so no per-worker arguments exist.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_vm.sh --name=NAME --zone=ZONE [options] [-- EXPERIMENT_ARGS...]

Runs `python3 -m experiments.train EXPERIMENT_ARGS...` on all workers of TPU VM NAME
(gcloud compute tpus tpu-vm ssh --worker=all), after cloning REPO at BRANCH into
REMOTE_DIR on each worker and installing it (`-e REMOTE_DIR[tpu]`, `[tpu,gcs]` for a gs://
workdir) into REMOTE_DIR/.venv on Python 3.11 fetched by uv: the TPU VM images are Ubuntu
22.04, whose python3 is 3.10, below this package's python_requires.

  --name=NAME               TPU VM / pod slice name (required)
  --zone=ZONE               zone, e.g. us-central2-b (required)
  --project=PROJECT         GCP project (default: gcloud's configured project)
  --create                  create the TPU VM first
  --accelerator_type=TYPE   with --create: e.g. v4-8, v4-32, v5litepod-16 (default v4-8)
  --version=VERSION         with --create: TPU software version (default: Google's for the
                            type: v2-alpha-tpuv6e for v6e, v2-alpha-tpuv5 for v5p,
                            v2-alpha-tpuv5-lite for v5e, else tpu-ubuntu2204-base)
  --spot                    with --create: a Spot VM (cheaper, can be preempted)
  --repo=URL                git URL the workers clone (default: this checkout's origin);
                            not a local path, which the workers cannot reach
  --branch=BRANCH           branch or tag to check out (default main)
  --remote_dir=DIR          checkout directory on the workers, relative to the home
                            directory (default transformer_jax)
  --workdir=DIR             passed as --workdir: the run directory, best a bucket
                            (gs://BUCKET/runs/NAME: every worker reaches it, nothing to
                            mount); a local path on a pod slice must be shared (NFS)
  --skip_install            don't clone/update and pip install (already done)
  --dry_run                 print the gcloud commands instead of running them

example (a 4-host v4-32 slice, 1B model sharded over 16 chips):
  launch/tpu_vm.sh --name=tj-pod --zone=us-central2-b --create --accelerator_type=v4-32 \
      --repo=https://github.com/me/transformer_jax.git --workdir=gs://my-bucket/runs/gpt_1b -- \
      --config=experiments/configs/gpt_stdlib.py --config.model.preset=gpt_1b \
      --config.mesh.data=1 --config.mesh.fsdp=-1
EOF
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

name=""
zone=""
project=""
create=0
accelerator_type="v4-8"
version=""
spot=0
repo=""
branch="main"
remote_dir="transformer_jax"
workdir=""
install=1
dry_run=0
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --name=*) name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --create) create=1 ;;
    --accelerator_type=*) accelerator_type="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --spot) spot=1 ;;
    --repo=*) repo="${1#*=}" ;;
    --branch=*) branch="${1#*=}" ;;
    --remote_dir=*) remote_dir="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --skip_install) install=0 ;;
    --dry_run | --dry-run) dry_run=1 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (experiment arguments go after --)" ;;
  esac
  shift
done
experiment_args=("$@")

[[ -n "$name" ]] || die "--name=NAME is required"
[[ -n "$zone" ]] || die "--zone=ZONE is required"
[[ -n "$remote_dir" ]] || die "--remote_dir must not be empty"
# Quoted for the workers' shell, a leading ~ would not expand; relative paths start at home.
remote_dir="${remote_dir#\~/}"
if ((install)) && [[ -z "$repo" ]]; then
  repo="$(git -C "$(dirname "$0")/.." remote get-url origin 2>/dev/null)" ||
    die "this checkout has no 'origin' remote: pass --repo=URL (or --skip_install)"
fi
if ((install)); then
  # A URL (not file://) or scp-style user@host:path; anything else is a path on this machine.
  if [[ ! "$repo" =~ ^[A-Za-z][A-Za-z0-9+.-]*:// || "$repo" == file://* ]] &&
    [[ ! "$repo" =~ ^[^/:]+@[^/:]+: ]]; then
    die "--repo=$repo is a local path the TPU workers cannot clone: pass a git URL they can reach (e.g. --repo=https://github.com/you/transformer_jax.git)"
  fi
fi
if [[ -n "$workdir" ]]; then
  experiment_args+=("--workdir=$workdir")
fi

# Flags every gcloud call shares.
location=("--zone=$zone")
if [[ -n "$project" ]]; then
  location+=("--project=$project")
fi

run() {
  if ((dry_run)); then
    shell_words "$@"
    printf '\n'
  else
    "$@"
  fi
}

if [[ -z "$version" ]]; then  # cloud.google.com/tpu/docs/runtimes, "PyTorch and JAX"
  case "$accelerator_type" in
    v6e*) version="v2-alpha-tpuv6e" ;;
    v5p*) version="v2-alpha-tpuv5" ;;
    v5litepod* | v5e*) version="v2-alpha-tpuv5-lite" ;;
    *) version="tpu-ubuntu2204-base" ;;
  esac
fi

if ((create)); then
  create_cmd=(gcloud compute tpus tpu-vm create "$name" "${location[@]}"
    "--accelerator-type=$accelerator_type" "--version=$version")
  if ((spot)); then
    create_cmd+=(--spot)
  fi
  run "${create_cmd[@]}"
fi

on_all_workers=(gcloud compute tpus tpu-vm ssh "$name" "${location[@]}" --worker=all)

if ((install)); then
  dir="$(shell_words "$remote_dir")"
  # Fetch + detached checkout: an existing checkout is updated, and local edits on a worker
  # make this fail loudly instead of being overwritten.
  install_line="set -e; if [ -d $dir/.git ]; then"
  install_line+=" git -C $dir fetch --quiet origin $(shell_words "$branch");"
  install_line+=" git -C $dir checkout --quiet --detach FETCH_HEAD;"
  install_line+=" else git clone --quiet --branch $(shell_words "$branch")"
  install_line+=" $(shell_words "$repo") $dir; fi;"
  extras="tpu"
  if [[ "$workdir" == gs://* ]]; then
    extras="tpu,gcs"  # epath's gs:// backend
  fi
  # The images' python3 is 3.10: uv fetches a 3.11 for the checkout's own venv.
  install_line+=" python3 -m pip install --quiet --user uv;"
  install_line+=" python3 -m uv venv --quiet --allow-existing --python 3.11 $dir/.venv;"
  install_line+=" python3 -m uv pip install --quiet --python $dir/.venv/bin/python"
  install_line+=" -e $(shell_words "${remote_dir}[$extras]")"
  run "${on_all_workers[@]}" "--command=$install_line"
fi

train_line="cd $(shell_words "$remote_dir") && .venv/bin/python -m experiments.train"
if ((${#experiment_args[@]})); then
  train_line+=" $(shell_words "${experiment_args[@]}")"
fi
run "${on_all_workers[@]}" "--command=$train_line"
