#!/usr/bin/env bash
# Runs N JAX processes on this machine, each with its own CPU devices, as one multi-process job.
#
# The same code paths as a multi-host pod (jax.distributed, global arrays assembled from
# per-process rows, gloo collectives, multi-process checkpoints), on a laptop.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/local_multiprocess.sh [--dry_run] [--port=PORT] N [DEVICES_PER_PROCESS] -- COMMAND...

Starts N copies of COMMAND on localhost as processes 0..N-1 of one JAX job, each with
DEVICES_PER_PROCESS CPU devices (default 1). Each process gets
  JAX_PLATFORMS=cpu
  XLA_FLAGS=--xla_force_host_platform_device_count=DEVICES_PER_PROCESS (other flags kept)
  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i
which transformer_jax.distributed.initialize reads. Output lines are prefixed with "[i] ".
Waits for all; if one fails, kills the others and exits with its status. Ctrl-C or SIGTERM
is passed on as SIGTERM (training then checkpoints and exits); a second one kills them.

  --dry_run      print each process's command line and exit
  --port=PORT    coordinator port (default: a free one)

example:
  launch/local_multiprocess.sh 2 2 -- python -m experiments.train \
      --config=experiments/configs/gpt_stdlib.py:test --workdir=/tmp/mp
EOF
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

dry_run=0
port=""
positional=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry_run | --dry-run) dry_run=1 ;;
    --port=*) port="${1#*=}" ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) positional+=("$1") ;;
  esac
  shift
done
command=("$@")

((${#positional[@]} >= 1 && ${#positional[@]} <= 2)) || die "expected N [DEVICES_PER_PROCESS] before --"
num_processes="${positional[0]}"
devices="${positional[1]:-1}"
[[ "$num_processes" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$num_processes'"
[[ "$devices" =~ ^[1-9][0-9]*$ ]] || die "DEVICES_PER_PROCESS must be a positive integer, got '$devices'"
((${#command[@]})) || die "no command after --"
if [[ -z "$port" ]]; then
  # Bind port 0 and release it: the OS picks a port nothing else is using right now.
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
if ! [[ "$port" =~ ^[1-9][0-9]*$ ]] || ((port > 65535)); then
  die "--port must be in 1..65535, got '$port'"
fi

# Keep the caller's other XLA flags, but only our device count (the last one would win anyway,
# this keeps the command lines readable).
xla_flags=""
read -r -a caller_flags <<<"${XLA_FLAGS:-}"
for flag in "${caller_flags[@]+"${caller_flags[@]}"}"; do
  [[ "$flag" == --xla_force_host_platform_device_count=* ]] || xla_flags+="$flag "
done
xla_flags+="--xla_force_host_platform_device_count=$devices"

# The environment of process $1, as NAME=VALUE words for `env`.
worker_env() {
  env_words=(JAX_PLATFORMS=cpu "XLA_FLAGS=$xla_flags" "JAX_COORDINATOR_ADDRESS=127.0.0.1:$port"
    "JAX_NUM_PROCESSES=$num_processes" "JAX_PROCESS_ID=$1")
}

if ((dry_run)); then
  for ((i = 0; i < num_processes; i++)); do
    worker_env "$i"
    shell_words env "${env_words[@]}" "${command[@]}"
    printf '\n'
  done
  exit 0
fi

# Each worker in its own process group (job control), the group's id being the command's pid.
set -m
pids=()
signal_all() {
  for pid in "${pids[@]}"; do
    kill "-$1" -- "-$pid" 2>/dev/null || true
  done
}
# Ctrl-C / SIGTERM: pass SIGTERM on and keep waiting, so the processes can stop together
# (train.py checkpoints and exits 0 on SIGTERM); a second one kills them.
interrupted=0
on_signal() {
  if ((interrupted)); then
    signal_all KILL
  else
    echo "launcher: SIGTERM sent to all processes; again to kill them" >&2
    signal_all TERM
  fi
  interrupted=1
}
trap on_signal INT TERM

for ((i = 0; i < num_processes; i++)); do
  worker_env "$i"
  # The prefixer ignores the signals sent to the group so it passes on a graceful stop's
  # last lines; it ends when the command closes its output.
  env "${env_words[@]}" "${command[@]}" \
    > >(trap '' INT TERM; exec sed -u "s/^/[$i] /") 2>&1 &
  pids+=("$!")
done

# Poll rather than `wait -n`, which macOS's bash 3.2 lacks.
exited=()
finished=0
while ((finished < num_processes)); do
  for ((i = 0; i < num_processes; i++)); do
    if [[ -n "${exited[i]:-}" ]] || kill -0 "${pids[i]}" 2>/dev/null; then
      continue
    fi
    exited[i]=1
    finished=$((finished + 1))
    status=0
    wait "${pids[i]}" || status=$?
    if ((status != 0)); then
      # The others would block in their next collective, waiting for this one: kill them.
      echo "error: process $i exited with status $status; stopping the others" >&2
      signal_all KILL
      wait || true
      exit "$status"
    fi
  done
  if ((finished < num_processes)); then
    sleep 0.2
  fi
done
