"""A checkpoint save that fills a real (tmpfs) filesystem: one error line, exit 1, earlier
checkpoints intact, and the same command resumes once there is space again."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.train.test_faults import ROOT, cli_args, losses
from transformer_jax import run as run_lib


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (needs root and mount permission; else the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_during_a_save_is_one_line_and_keeps_earlier_checkpoints(config, small_disk):
    workdir = small_disk / "run"
    run_lib.train_and_evaluate(config, str(workdir))  # 6 steps, checkpoints at 3 and 6
    straight = losses(workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")
    before = sorted((p.name, p.stat().st_size) for p in (workdir / "checkpoints" / "3").rglob("*"))
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave 200 KiB: metrics fit, step 6 (~3 MiB) does not
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(small_disk).free - 200 * 1024)

    proc = subprocess.run([sys.executable, *cli_args(config, workdir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"error: No space left on device for checkpoint step 6 under "
                                f"{workdir / 'checkpoints'} (a checkpoint takes about ")
    assert errors[0].endswith("earlier checkpoints are intact"), errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert sorted((p.name, p.stat().st_size)
                  for p in (workdir / "checkpoints" / "3").rglob("*")) == before

    filler.unlink()  # space is back: the same command resumes from step 3
    run_lib.train_and_evaluate(config, str(workdir))
    assert losses(workdir) == straight
