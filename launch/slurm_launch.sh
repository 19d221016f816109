#!/usr/bin/env bash
# Submits launch/slurm.sbatch: a multi-node GPU training job, one JAX process per GPU or node.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/slurm_launch.sh --nodes=N [options] [-- EXPERIMENT_ARGS...]

Submits launch/slurm.sbatch with sbatch; it runs `srun python -m experiments.train
EXPERIMENT_ARGS...` on N nodes, the coordinator being the first node of the job.

  --nodes=N              nodes (required)
  --gpus_per_node=G      GPUs per node (default 8)
  --process_per=gpu|node one process per GPU (default) or per node
  --partition=NAME       SLURM partition
  --account=NAME         SLURM account
  --time=LIMIT           time limit, e.g. 24:00:00
  --job_name=NAME        job name (default transformer_jax)
  --python=PATH          interpreter on the nodes (default python3), e.g. .venv/bin/python
                         after `python3 -m venv .venv && .venv/bin/pip install -e '.[gpu]'`
  --port=PORT            coordinator port (default: from the job id)
  --dry_run              print the sbatch command and the processes' environment, submit nothing

example (16 GPUs, data parallel):
  launch/slurm_launch.sh --nodes=2 --partition=gpu --python=.venv/bin/python -- \
      --config=experiments/configs/gpt_stdlib.py --workdir=/shared/runs/gpt --config.mesh.data=-1
EOF
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

nodes=""
gpus_per_node=8
process_per=gpu
job_name=transformer_jax
python=python3
port=""
dry_run=0
sbatch_options=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --nodes=*) nodes="${1#*=}" ;;
    --gpus_per_node=*) gpus_per_node="${1#*=}" ;;
    --process_per=*) process_per="${1#*=}" ;;
    --partition=*) sbatch_options+=("--partition=${1#*=}") ;;
    --account=*) sbatch_options+=("--account=${1#*=}") ;;
    --time=*) sbatch_options+=("--time=${1#*=}") ;;
    --job_name=*) job_name="${1#*=}" ;;
    --python=*) python="${1#*=}" ;;
    --port=*) port="${1#*=}" ;;
    --dry_run | --dry-run) dry_run=1 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (experiment arguments go after --)" ;;
  esac
  shift
done
experiment_args=("$@")

[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes=N is required (a positive integer), got '$nodes'"
[[ "$gpus_per_node" =~ ^[1-9][0-9]*$ ]] || die "--gpus_per_node must be a positive integer"
case "$process_per" in
  gpu) tasks_per_node="$gpus_per_node" ;;
  node) tasks_per_node=1 ;;
  *) die "--process_per must be gpu or node, got '$process_per'" ;;
esac
if [[ -n "$port" ]] && ! [[ "$port" =~ ^[1-9][0-9]*$ && "$port" -lt 65536 ]]; then
  die "--port must be in 1..65535, got '$port'"
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
# The job inherits this shell's environment (--export=ALL) plus the settings slurm.sbatch reads.
job_env=("PYTHON=$python" "TJ_PROCESS_PER=$process_per")
if [[ -n "$port" ]]; then
  job_env+=("TJ_PORT=$port")
fi
export_list="ALL"
for assignment in "${job_env[@]}"; do
  export_list+=",$assignment"
done
sbatch_cmd=(sbatch "--job-name=$job_name" "--nodes=$nodes" "--ntasks-per-node=$tasks_per_node"
  "--gpus-per-node=$gpus_per_node" "${sbatch_options[@]+"${sbatch_options[@]}"}"
  "--chdir=$root" "--export=$export_list" "$root/launch/slurm.sbatch"
  "${experiment_args[@]+"${experiment_args[@]}"}")

if ((dry_run)); then
  shell_words "${sbatch_cmd[@]}"
  printf '\n# each of the %d processes gets (SLURM fills in the values at run time):\n' \
    "$((nodes * tasks_per_node))"
  printf '#   %s\n' "${job_env[@]}" \
    "JAX_COORDINATOR_ADDRESS=<first host of scontrol show hostnames \$SLURM_JOB_NODELIST>:${port:-<61440 + SLURM_JOB_ID % 4096>}" \
    "SLURM_NTASKS=$((nodes * tasks_per_node)) SLURM_PROCID=<process id> SLURM_LOCALID=<process on its node>"
  if [[ "$process_per" == node ]]; then
    printf '#   %s\n' "JAX_LOCAL_DEVICE_IDS=$(seq -s, 0 $((gpus_per_node - 1)))"
  fi
  exit 0
fi
"${sbatch_cmd[@]}"
