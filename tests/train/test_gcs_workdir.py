"""gs:// workdirs against a local GCS emulator: train -> kill -9 -> resume (exact, through a
damaged checkpoint), evaluate, generate, init_from, and the up-front bucket check.

The emulator (gcp-storage-emulator, extra `gcs-test`) serves 127.0.0.1; gcsfs finds it through
STORAGE_EMULATOR_HOST, tensorstore (Orbax's array writes) through TENSORSTORE_GCS_HTTP_URL, with
a fixed test token instead of Google credentials.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("gcsfs")

import gcsfs
import jax
import numpy as np
from etils import epath

from tests.train.test_faults import ROOT, cli_args, losses
from transformer_jax import run as run_lib
from transformer_jax import workpath
from transformer_jax.errors import UserError
from transformer_jax.run import workdir as workdir_lib
from transformer_jax.train import pretrained

BUCKET = "tj-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bucket():
    """gs://tj-test on an in-memory emulator, with the environment pointing at it."""
    url = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).with_name("gcs_emulator.py")),
         url.rsplit(":", 1)[1], BUCKET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1)
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, "emulator did not start"
            time.sleep(0.1)
    env = pytest.MonkeyPatch()
    env.setenv("STORAGE_EMULATOR_HOST", url)
    env.setenv("TENSORSTORE_GCS_HTTP_URL", url)
    env.setenv("GOOGLE_AUTH_TOKEN_FOR_TESTING", "emulator")
    env.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # no bucket-layout API there
    gcsfs.GCSFileSystem.clear_instance_cache()
    yield f"gs://{BUCKET}"
    env.undo()
    gcsfs.GCSFileSystem.clear_instance_cache()
    proc.terminate()
    proc.wait()


def bucket_losses(workdir: str) -> dict[int, float]:
    lines = [json.loads(x) for x in epath.Path(workdir, "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == "train"}


def committed_steps(workdir: str) -> list[int]:
    root = epath.Path(workdir, "checkpoints")
    if not root.exists():
        return []
    return sorted(int(p.name) for p in root.iterdir()
                  if p.name.isdigit() and (p / "commit_success.txt").exists())


def test_train_kill_resume_evaluate_generate_on_a_bucket(config, tmp_path, bucket):
    local = tmp_path / "straight"
    run_lib.train_and_evaluate(config, str(local))  # 6 steps, checkpoints at 3 and 6
    workdir = f"{bucket}/runs/killed"
    proc = subprocess.Popen([sys.executable, *cli_args(config, workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))
    deadline = time.time() + 240
    while not committed_steps(workdir):  # step 3's save is done: steps 4-6 are running
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = committed_steps(workdir)
    assert saved == [3], f"killed too late to test anything: {saved}"
    run_lib.train_and_evaluate(config, workdir)
    assert bucket_losses(workdir) == losses(local)
    assert {"tokenizer.model", "config.json", "tensorboard"} <= {
        p.name for p in epath.Path(workdir).iterdir()}
    assert any(p.name.startswith("events.out.tfevents")
               for p in epath.Path(workdir, "tensorboard").iterdir())

    assert workdir_lib.evaluate_workdir(workdir, max_batches=2) == \
        workdir_lib.evaluate_workdir(str(local), max_batches=2)
    options = dict(max_new_tokens=8, temperature=0.0)
    assert workdir_lib.generate_from_workdir(workdir, "def ", **options) == \
        workdir_lib.generate_from_workdir(str(local), "def ", **options)

    # As if the run had died in step 6's save (Orbax writes commit_success.txt last there):
    # restoring falls back to step 3 and moves step 6 aside.
    epath.Path(workdir, "checkpoints", "6", "commit_success.txt").unlink()
    assert workdir_lib.evaluate_workdir(workdir, max_batches=2)["step"] == 3
    names = {p.name for p in epath.Path(workdir, "checkpoints").iterdir()}
    assert any(n.startswith("6.damaged-") for n in names), names

    # init_from a bucket run loads the same weights as the local copy of that run has.
    run, params, _ = workdir_lib.load_run(str(local), step=3)
    located = pretrained.locate(workdir, run.model_config)
    assert located.step == 3 and str(located.workdir) == workdir
    merged = pretrained.load_into(located, params)
    for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_missing_bucket_is_one_line_before_anything_is_written(config, bucket):
    with pytest.raises(UserError, match="gs://no-such-bucket-tj/run: could not write") as e:
        run_lib.train_and_evaluate(config, "gs://no-such-bucket-tj/run")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="no checkpoint in gs://no-such-bucket-tj/run"):
        workdir_lib.evaluate_workdir("gs://no-such-bucket-tj/run")


def test_a_bucket_that_never_answers_fails_within_the_deadline(bucket, monkeypatch):
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{silent.getsockname()[1]}")
        gcsfs.GCSFileSystem.clear_instance_cache()
        try:
            with pytest.raises(UserError, match="within 2 s"):
                workpath.check_reachable(epath.Path(f"{bucket}/hang"), write=True, timeout_s=2)
        finally:
            gcsfs.GCSFileSystem.clear_instance_cache()


def test_local_paths_resolve_as_before_and_urls_stay_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(workpath.resolve("runs/x")) == str(tmp_path / "runs" / "x")
    assert not workpath.is_url("runs/x") and workpath.is_url("gs://b/x")
    assert str(workpath.resolve("gs://b/runs/x") / "checkpoints") == "gs://b/runs/x/checkpoints"
    with pytest.raises(UserError, match="unsupported URL scheme ftp://"):
        workpath.resolve("ftp://host/x")
