"""Multi-process start-up: layout detection, and 2 processes training exactly like 1."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from jax._src import cloud_tpu_init, clusters

from tests.train.conftest import corpus  # noqa: F401  (session fixture)
from transformer_jax import distributed, rendezvous
from transformer_jax.checkpoint import Checkpointer
from transformer_jax.errors import UserError

ROOT = pathlib.Path(__file__).parent.parent
LAUNCHER = ROOT / "launch" / "local_multiprocess.sh"
SLURM_TASK = {"SLURM_JOB_ID": "1234", "SLURM_NTASKS": "4", "SLURM_PROCID": "2",
              "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "gpu[07-08]"}


# Detection (jax.distributed.initialize recorded, not run) ------------------------------------


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Recorded jax.distributed.initialize calls, in an environment with no cluster at all."""
    for name in list(os.environ):
        if name.startswith(("JAX_COORDINATOR", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
                            "SLURM_", "TPU_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False)
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    recorded = []
    monkeypatch.setattr(rendezvous, "roll_call", lambda *args: None)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: recorded.append(kw))
    return recorded


def test_single_process_when_nothing_is_set(calls):
    distributed.initialize()
    distributed.initialize(None, None, None)
    assert calls == []


def test_explicit_arguments_win_over_the_environment(calls, monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "elsewhere:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "8")
    monkeypatch.setenv("JAX_PROCESS_ID", "7")
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    distributed.initialize("10.0.0.1:1234", 2, 1)
    assert calls == [dict(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=1)]


@pytest.mark.parametrize("args, message", [
    (("10.0.0.1:1234", 2, None), r"give all of .*unset"),
    ((None, 2, 0), r"give all of"),
    (("10.0.0.1:1234", 2, 2), r"process id 2 is not in \[0, 2\)"),
    (("10.0.0.1:1234", 0, 0), r"process id 0 is not in \[0, 0\)"),
    (("10.0.0.1", 2, 0), r"'10.0.0.1' is not HOST:PORT"),
    ((":1234", 2, 0), r"':1234' is not HOST:PORT"),
    (("host:http", 2, 0), r"expected HOST:PORT, an integer and an integer"),
])
def test_bad_explicit_arguments_are_user_errors(calls, args, message):
    with pytest.raises(UserError, match=message):
        distributed.initialize(*args)
    assert calls == []


def test_environment_variables(calls, monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:5000")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    distributed.initialize()
    assert calls == [dict(coordinator_address="127.0.0.1:5000", num_processes=4, process_id=3)]


@pytest.mark.parametrize("env, message", [
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, r"give all of JAX_COORDINATOR_ADDRESS"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
     r"expected HOST:PORT, an integer and an integer \(got 'h:1', 'two', '0'\)"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1"}, r"JAX_NUM_PROCESSES and JAX_PROCESS_ID are not"),
])
def test_bad_environment_is_a_user_error(calls, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=message):
        distributed.initialize()
    assert calls == []


def test_slurm_step_uses_jax_slurm_detection(calls, monkeypatch):
    for name, value in SLURM_TASK.items():
        monkeypatch.setenv(name, value)
    distributed.initialize()
    assert calls == [dict(cluster_detection_method="slurm")]
    # What that detection reads from this environment in the installed JAX: the coordinator
    # (unless JAX_COORDINATOR_ADDRESS, which slurm.sbatch sets, overrides it), the process
    # count and id, and the one GPU of this task.
    detected = clusters.ClusterEnv.auto_detect_unset_distributed_params(
        None, None, None, None, "slurm", 10)
    assert detected == ("gpu07:" + str(61440 + 1234 % 4096), 4, 2, [1])


def test_slurm_single_task_or_missing_srun(calls, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    distributed.initialize()
    assert calls == []
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a 4-task job, but this process isn't an srun task
    with pytest.raises(UserError, match="SLURM_STEP_NODELIST, SLURM_PROCID, SLURM_LOCALID "
                                        "unset: start each process with srun"):
        distributed.initialize()


def test_cloud_tpu_uses_jax_tpu_detection(calls, monkeypatch):
    monkeypatch.setattr(cloud_tpu_init, "running_in_cloud_tpu_vm", True)
    distributed.initialize()
    assert calls == [{}]


def test_idempotent(calls, monkeypatch):
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
    distributed.initialize("10.0.0.1:1234", 2, 0)
    assert calls == []


def test_train_flags_reach_initialize():
    """A partial layout on the command line is a one-line error before anything runs."""
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--num_processes=2", "--process_id=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("JAX_COORDINATOR")})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: give all of coordinator_address, num_processes, process_id or none of them "
        "(got unset, 2, 0)")


# Real processes: 2 processes x 2 CPU devices == 1 process x 4 devices -------------------------


class TrainingFailedError(Exception):
    """A training run exited non-zero; the message is its output."""


def _train(workdir: pathlib.Path, corpus_dir: pathlib.Path, cache: pathlib.Path,
           processes: int, *extra: str) -> str:
    """Runs the `:test` config (6 steps, global batch 8 on a data-parallel mesh of 4 devices)
    as `processes` processes; returns the output. Raises with the output if it fails."""
    command = [sys.executable, "-m", "experiments.train",
               "--config=experiments/configs/gpt_stdlib.py:test", f"--workdir={workdir}",
               "--config.data.source=local", f"--config.data.path={corpus_dir}",
               "--config.data.validation_fraction=0.2", "--config.mesh.data=-1", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    # A shared persistent compilation cache: the resumed runs reuse the straight runs'
    # executables (the same programs), which saves a third of this test's time.
    env.update(TRANSFORMER_JAX_CACHE=str(cache), JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=str(cache / "xla"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    if processes == 1:
        # The suite's other XLA flags (tests/conftest.py) stay, as the launcher keeps them.
        env["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=4")
        command.append("--config.sample.max_new_tokens=0")
    else:
        # Sampling stays on: experiments.train must skip it, as the loop's process-0-only
        # sampling would deadlock (and time out) with parameters on several processes.
        command = ["bash", str(LAUNCHER), str(processes), str(4 // processes), "--", *command]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=200)
    output = result.stdout + result.stderr
    if result.returncode:
        raise TrainingFailedError(output)
    return output


def _losses(workdir: pathlib.Path, split: str = "train") -> dict[int, float]:
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == split}


def _assert_same_losses(got: pathlib.Path, expected: pathlib.Path) -> None:
    for split in ("train", "eval"):
        mine, theirs = _losses(got, split), _losses(expected, split)
        assert sorted(mine) == sorted(theirs) and mine, split
        np.testing.assert_allclose([mine[s] for s in sorted(mine)],
                                   [theirs[s] for s in sorted(theirs)], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus):  # noqa: F811
    """Straight runs on 1 process x 4 devices and on 2 processes x 2 devices."""
    root = tmp_path_factory.mktemp("distributed")
    cache = tmp_path_factory.getbasetemp() / "cache"
    timings = {}
    # One process first: it trains (and caches) the tokenizer, so the two processes of the
    # next run both load it instead of racing to train it.
    for name, processes in (("one", 1), ("two", 2)):
        start = time.perf_counter()
        # The data stream in 2 shards: the 2-process run (default: a shard per process) reads
        # one each; the 1-process run reads both, so both train on the same batches.
        _train(root / name, corpus, cache, processes,
               *(["--config.data.num_shards=2"] if processes == 1 else []))
        timings[name] = time.perf_counter() - start
    print(f"\nstraight runs: 1 process {timings['one']:.1f} s, 2 processes {timings['two']:.1f} s")
    return root, corpus, cache


def test_two_processes_train_exactly_like_one(runs):
    root, _, _ = runs
    _assert_same_losses(root / "two", root / "one")
    # The 2-process run really was one job over 4 devices, each process holding 2 of them.
    for name in ("one", "two"):
        step, meta = Checkpointer(root / name / "checkpoints").read_metadata()
        assert (step, meta["mesh"]) == (6, {"data": 4, "fsdp": 1, "tensor": 1})


@pytest.mark.parametrize("written_by, resumed_by", [(2, 1), (1, 2)])
def test_checkpoint_resumes_on_another_process_count(runs, written_by, resumed_by):
    root, corpus_dir, cache = runs
    name = {1: "one", 2: "two"}
    workdir = root / f"{name[written_by]}_resumed_by_{name[resumed_by]}"
    shutil.copytree(root / name[written_by], workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")  # resume from step 3, redo steps 4-6
    output = _train(workdir, corpus_dir, cache, resumed_by)  # num_shards: the checkpoint's
    assert "resumed from step 3" in output
    _assert_same_losses(workdir, root / "one")
