"""What a short run leaves for its user: MFU at most 100 %, each warning at most once, no NaN
in metrics.jsonl, and TensorBoard and metrics.jsonl with each step once after kill/resume and
after re-running a finished run."""

import json
import logging
import pathlib
import shutil
from collections import Counter

from tensorboardX.proto.event_pb2 import SessionLog

from tests.tensorboard_events import read_events
from transformer_jax import run as run_lib


def _records(workdir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _tensorboard_scalars(logdir: pathlib.Path, *, purge: bool) -> list[tuple[str, int]]:
    """(tag, step) of every scalar TensorBoard shows, reading the files oldest first.

    With `purge`, as TensorBoard does: a session START event at step T hides the earlier
    files' scalars at steps >= T (tensorboardX writes one for `purge_step`).
    """
    shown: list[tuple[str, int]] = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in read_events(path):
            if purge and event.session_log.status == SessionLog.START:
                shown = [(tag, step) for tag, step in shown if step < event.step]
            shown += [(value.tag, event.step) for value in event.summary.value]
    return shown


def test_short_run_then_resume_then_rerun(config, corpus, tmp_path, caplog, capsys):
    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    (data / "binary.bin").write_bytes(b"\x00\xff")  # one not-UTF-8 file, reported once
    config.data.path = str(data)
    workdir = tmp_path / "run"
    caplog.set_level(logging.WARNING)

    run_lib.train_and_evaluate(config, str(workdir))
    mfu = [r["mfu"] for r in _records(workdir) if "mfu" in r]
    assert mfu and all(0 < m <= 1 for m in mfu), mfu
    straight = _records(workdir)
    evals = [r for r in straight if r["split"] == "eval"]  # each states what it covered
    assert evals and all(r["eval_batches"] == config.train.eval_batches
                         and r["eval_complete"] == 0 for r in evals), evals
    rows = config.train.batch_size  # one global batch
    assert (f"eval on the first {config.train.eval_batches} batches of {rows} rows (a subset): "
            "loss ") in capsys.readouterr().out
    shutil.rmtree(workdir / "checkpoints" / "6")  # killed after step 3's checkpoint
    run_lib.train_and_evaluate(config, str(workdir))  # resumes at step 3
    run_lib.train_and_evaluate(config, str(workdir))  # finished: evaluates, records nothing

    records = _records(workdir)
    rows = [(r["step"], r["split"]) for r in records]
    assert rows == [(r["step"], r["split"]) for r in straight]  # each row once, in order
    assert all(v is not None for r in records for v in r.values())  # unknown figures omitted
    assert all(r["tokens"] == config.train.batch_size * config.data.seq_len
               for r in records if r["split"] == "train")  # packed LM rows have no padding

    logdir = workdir / "tensorboard"
    assert max(Counter(_tensorboard_scalars(logdir, purge=False)).values()) == 2  # redone
    shown = Counter(_tensorboard_scalars(logdir, purge=True))
    assert max(shown.values()) == 1 and ("train/loss", 6) in shown

    warnings = Counter(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert not [m for m in warnings if "read only" in m or "read_only" in m], warnings
    assert not [m for m in warnings if "NaN" in m], warnings
    assert [m for m in warnings if "not UTF-8" in m] and max(warnings.values()) == 1, warnings
