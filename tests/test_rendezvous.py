"""Start-up roll call: a process that never starts is one line on the others, not a hang."""

import os
import pathlib
import socket
import subprocess
import sys
import threading

import pytest

from transformer_jax import rendezvous
from transformer_jax.errors import UserError

ROOT = pathlib.Path(__file__).parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_processes_joining_pass_and_a_missing_one_is_counted():
    address = f"127.0.0.1:{_free_port()}"
    errors = []

    def join(pid):
        try:
            rendezvous.roll_call(address, 3, pid, timeout_s=30)
        except UserError as e:
            errors.append(e)

    threads = [threading.Thread(target=join, args=(pid,)) for pid in (2, 0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    address = f"127.0.0.1:{_free_port()}"
    worker = threading.Thread(target=join, args=(1,))  # process 2 never comes
    worker.start()
    with pytest.raises(UserError, match=f"coordinator {address} expected 3 processes, "
                                        r"joined within 2 s: 2;"):
        rendezvous.roll_call(address, 3, 0, timeout_s=2)
    worker.join()
    assert len(errors) == 1 and "expected 3 processes, joined within 30 s: 2;" in str(errors[0])


def test_a_process_that_never_starts_is_one_line_on_the_one_that_did(tmp_path):
    """2 local processes, process 1 never starts: process 0 exits 1 with one error line."""
    address = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, **{rendezvous.TIMEOUT_VAR: "10"})
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train",
         "--config=experiments/configs/gpt_stdlib.py:test",
         f"--workdir={tmp_path / 'run'}", f"--coordinator_address={address}",
         "--num_processes=2", "--process_id=0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: jax.distributed start-up: coordinator {address} expected 2 "
                      "processes, joined within 10 s: 1; start the missing ones (or check "
                      "--num_processes and the coordinator address)"], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
