"""Multi-process start-up: one `initialize(...)` call on every process, before any JAX work.

Where the process layout comes from (the first that applies wins):

1. explicit arguments, all three (e.g. the `--coordinator_address`, `--num_processes`,
   `--process_id` flags of `experiments/train.py`);
2. the environment variables `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
   `JAX_PROCESS_ID`, all three (what `launch/local_multiprocess.sh` sets);
3. a SLURM step with more than one task (`srun`): JAX's SLURM detection gives the process id
   (`SLURM_PROCID`), the count (`SLURM_NTASKS`) and one GPU per task (`SLURM_LOCALID`, unless
   `JAX_LOCAL_DEVICE_IDS` lists the GPUs); the coordinator is `JAX_COORDINATOR_ADDRESS`
   when set (`launch/slurm.sbatch` sets it), else the step's first node;
4. a Cloud TPU VM or pod slice: JAX's TPU detection (the GCE metadata server, or
   `TPU_WORKER_HOSTNAMES` on GKE) gives every worker its id and the coordinator;
5. nothing of the above: a single process, and `jax.distributed` is not started at all.

On CPU, each process's local devices come from `XLA_FLAGS=
--xla_force_host_platform_device_count=N`, set before JAX is imported; the collectives
between processes use gloo (JAX's CPU default).
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from transformer_jax import compat, rendezvous
from transformer_jax.errors import UserError

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# What JAX's SLURM detection reads besides the job id; only `srun` sets them for each task.
_SLURM_STEP_VARS = ("SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Starts `jax.distributed` when this is one process of several; else does nothing.

    Call it on every process before anything that touches JAX devices (JAX refuses to
    start the distributed system once a backend exists). Calling it again is a no-op.

    Args:
      coordinator_address: "host:port" of process 0's coordinator service.
      num_processes: how many processes the job has.
      process_id: this process's number, in [0, num_processes).
      Give all three or none; with none, the layout is detected (see the module docstring).

    Raises:
      UserError: only some of the three are given (as arguments or as JAX_* environment
        variables), or they are malformed, or a multi-task SLURM job did not start this
        process with `srun`.
    """
    if jax.distributed.is_initialized():
        return
    explicit = (coordinator_address, num_processes, process_id)
    if any(value is not None for value in explicit):
        _initialize_explicit(*_check_layout(explicit, "coordinator_address, num_processes, "
                                                      "process_id"))
        return
    env = tuple(os.environ.get(name) for name in ENV_VARS)
    env_address, env_count, env_id = env
    if env_count is not None or env_id is not None:
        _initialize_explicit(*_check_layout(env, ", ".join(ENV_VARS)))
    elif _slurm_task_count() > 1:
        missing = [name for name in _SLURM_STEP_VARS if name not in os.environ]
        if missing:
            raise UserError(
                f"SLURM job with SLURM_NTASKS={os.environ['SLURM_NTASKS']} but "
                f"{', '.join(missing)} unset: start each process with srun"
            )
        logging.info("jax.distributed: SLURM task %s", os.environ["SLURM_PROCID"])
        jax.distributed.initialize(cluster_detection_method="slurm")
    elif compat.running_in_cloud_tpu_vm():
        logging.info("jax.distributed: Cloud TPU VM, layout from the TPU metadata")
        jax.distributed.initialize()
    elif env_address is not None:
        raise UserError(
            "JAX_COORDINATOR_ADDRESS is set but JAX_NUM_PROCESSES and JAX_PROCESS_ID are "
            "not, and this is no SLURM step or TPU VM: set all three"
        )


def _check_layout(
    values: tuple[str | int | None, ...], names: str
) -> tuple[str, int, int]:
    """(address, num_processes, process_id) checked, or a UserError naming `names`."""
    if any(value is None for value in values):
        raise UserError(f"give all of {names} or none of them (got {_show(values)})")
    address, count, pid = str(values[0]), values[1], values[2]
    host, _, port = address.rpartition(":")
    try:
        count, pid = int(count), int(pid)
        port_ok = host != "" and 0 < int(port) < 65536
    except ValueError:
        raise UserError(f"{names}: expected HOST:PORT, an integer and an integer "
                        f"(got {_show(values)})") from None
    if not port_ok:
        raise UserError(f"coordinator address {address!r} is not HOST:PORT")
    if count < 1 or not 0 <= pid < count:
        raise UserError(
            f"process id {pid} is not in [0, {count}): ids run from 0 to num_processes - 1"
        )
    return address, count, pid


def _initialize_explicit(address: str, num_processes: int, process_id: int) -> None:
    logging.info("jax.distributed: process %d of %d, coordinator %s",
                 process_id, num_processes, address)
    rendezvous.roll_call(address, num_processes, process_id)  # one line if one is missing
    jax.distributed.initialize(
        coordinator_address=address, num_processes=num_processes, process_id=process_id
    )


def _slurm_task_count() -> int:
    """SLURM_NTASKS of the job this runs in (0 outside SLURM)."""
    if "SLURM_JOB_ID" not in os.environ:
        return 0
    try:
        return int(os.environ.get("SLURM_NTASKS", "1"))
    except ValueError:
        raise UserError(
            f"SLURM_NTASKS={os.environ['SLURM_NTASKS']!r} is not an integer"
        ) from None


def _show(values: tuple[str | int | None, ...]) -> str:
    return ", ".join("unset" if value is None else repr(value) for value in values)


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is True on any (a collective: all must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.process_allgather(np.asarray(flag, np.int32)).any())


def merge_process_states(state: dict) -> dict:
    """One data-iterator state from every process's (a collective: all must call it).

    States with a "shards" dict (data/lm_pipeline.py: each process holds its own shards') are
    merged; any other state is the same on every process (data/batching.py) and kept as is.
    """
    if jax.process_count() == 1 or "shards" not in state:
        return state
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(state).encode("utf-8"), np.uint8)
    lengths = multihost_utils.process_allgather(np.asarray([data.size], np.int64))
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: data.size] = data
    everyone = multihost_utils.process_allgather(padded)
    merged = {**state, "shards": {}}
    for row, (length,) in zip(everyone, lengths, strict=True):
        merged["shards"].update(json.loads(bytes(row[: int(length)]).decode("utf-8"))["shards"])
    return merged
