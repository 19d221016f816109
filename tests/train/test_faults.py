"""Fault injection: kill -9, SIGTERM, damaged checkpoints, a full disk, non-finite losses."""

import errno
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from transformer_jax import run as run_lib
from transformer_jax.errors import UserError
from transformer_jax.tasks import lm as lm_task

ROOT = pathlib.Path(__file__).parent.parent.parent


def losses(workdir: pathlib.Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == "train"}


def cli_args(config, workdir) -> list[str]:
    return [
        "-m", "experiments.train", "--config=experiments/configs/gpt_stdlib.py:test",
        f"--workdir={workdir}", "--config.data.source=local",
        f"--config.data.path={config.data.path}", "--config.data.validation_fraction=0.2",
        "--config.sample.max_new_tokens=0", f"--config.train.steps={config.train.steps}",
        f"--config.train.checkpoint_every={config.train.checkpoint_every}",
        f"--config.train.eval_every={config.train.eval_every}",
    ]


def start(config, workdir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *cli_args(config, workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))


def wait_for_step(workdir: pathlib.Path, step: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 240
    while time.time() < deadline:
        path = workdir / "metrics.jsonl"
        if path.exists() and max(losses(workdir) or {0: 0}) >= step:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_kill_9_then_resume_matches_an_uninterrupted_run(config, tmp_path):
    config.train.update(steps=12, checkpoint_every=2, eval_every=100)
    run_lib.train_and_evaluate(config, str(tmp_path / "straight"))
    kill_after = random.Random(os.getpid()).randint(3, 9)
    workdir = tmp_path / "killed"
    proc = start(config, workdir)
    wait_for_step(workdir, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert max(losses(workdir)) < 12, "killed too late to test anything"
    run_lib.train_and_evaluate(config, str(workdir))
    assert losses(workdir) == losses(tmp_path / "straight"), f"killed after step {kill_after}"


def test_sigterm_checkpoints_the_current_step_and_exits_cleanly(config, tmp_path):
    config.train.update(steps=10_000, checkpoint_every=10_000, eval_every=10_000)
    workdir = tmp_path / "run"
    proc = start(config, workdir)
    wait_for_step(workdir, 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    last = max(losses(workdir))
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps == [last], out
    assert f"saved a checkpoint at step {last}" in out


def _damage(newest: pathlib.Path, how: str) -> None:
    if how == "empty_step_dir":
        shutil.rmtree(newest)
        newest.mkdir()
    elif how == "missing_metadata":
        (newest / "_CHECKPOINT_METADATA").unlink()
        (newest / "state" / "_METADATA").unlink()
    elif how == "truncated_data_file":
        for f in (newest / "state").rglob("*"):
            if f.is_file() and f.stat().st_size > 1000:
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "deleted_manifest":
        for f in newest.rglob("manifest.ocdbt"):
            f.unlink()
    elif how == "partial_temp_dir":  # the save of this step never finished
        partial = newest.with_name(f"{newest.name}.orbax-checkpoint-tmp-1700000000")
        newest.rename(partial)
        shutil.rmtree(partial / "state" / "d", ignore_errors=True)


@pytest.mark.parametrize("how", ["empty_step_dir", "missing_metadata", "truncated_data_file",
                                 "deleted_manifest", "partial_temp_dir"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_good_one(
        config, tmp_path, how, caplog):
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))  # 6 steps, checkpoints at 3 and 6
    straight = losses(workdir)
    _damage(workdir / "checkpoints" / "6", how)
    run_lib.train_and_evaluate(config, str(workdir))
    assert "unreadable" in caplog.text or "unfinished" in caplog.text
    assert losses(workdir) == straight  # steps 4-6 redone from step 3, identically
    assert (workdir / "checkpoints" / "6" / "state").is_dir()


def test_disk_full_on_save_is_a_clear_error_and_keeps_earlier_checkpoints(
        config, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))
    shutil.rmtree(workdir / "checkpoints" / "6")
    before = sorted(p.name for p in (workdir / "checkpoints" / "3").rglob("*"))

    async def no_space(*args, **kwargs):  # fails in the background, as a real write would
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", no_space)
    with pytest.raises(UserError, match="No space left on device"):
        run_lib.train_and_evaluate(config, str(workdir))
    assert sorted(p.name for p in (workdir / "checkpoints" / "3").rglob("*")) == before
    assert not (workdir / "checkpoints" / "6").exists()
    monkeypatch.undo()
    run_lib.train_and_evaluate(config, str(workdir))  # space is back: it resumes from 3
    assert (workdir / "checkpoints" / "6").is_dir()


def _poisoned_loss(monkeypatch):
    """Makes every loss NaN (the model "diverges") for runs started after this call."""
    real = lm_task.lm_loss_fn

    def poisoned(model):
        fn = real(model)

        def loss_fn(params, batch, rng):
            loss_sum, weights = fn(params, batch, rng)
            return loss_sum * jnp.nan, weights

        return loss_fn

    monkeypatch.setattr(lm_task, "lm_loss_fn", poisoned)


def test_nonfinite_loss_stops_with_a_clear_error_keeping_the_last_good_checkpoint(
        config, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))
    shutil.rmtree(workdir / "checkpoints" / "6")
    _poisoned_loss(monkeypatch)
    with pytest.raises(UserError, match="non-finite loss or gradients at step 4"):
        run_lib.train_and_evaluate(config, str(workdir))
    names = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    assert names == ["3"]


def test_nonfinite_loss_skip_leaves_params_unchanged_and_counts(config, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    config.train.on_nonfinite = "skip"
    run_lib.train_and_evaluate(config, str(workdir))
    shutil.rmtree(workdir / "checkpoints" / "6")
    run = run_lib.setup_run(config, str(workdir))
    at_3 = run_lib.restore_state(run)
    _poisoned_loss(monkeypatch)
    run_lib.train_and_evaluate(config, str(workdir))
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [x["nonfinite"] for x in lines if x["split"] == "train"] == [0, 0, 0, 1, 1, 1]
    at_6 = run_lib.restore_state(run_lib.setup_run(config, str(workdir)))
    assert int(at_6.step) == 6
    for a, b in zip(jax.tree.leaves(at_3.params), jax.tree.leaves(at_6.params), strict=False):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
