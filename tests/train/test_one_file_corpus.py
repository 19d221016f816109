"""Any corpus trains: one text file is split by position; an empty split fails in one line
before the run writes anything."""

import json
import math

import pytest

from transformer_jax import run as run_lib
from transformer_jax.errors import UserError


@pytest.fixture
def one_file(corpus, tmp_path):
    """~150 KB of stdlib code as one file: one document."""
    path = tmp_path / "one_big_module.py"
    path.write_text("".join((corpus / name).read_text() for name in
                            ("textwrap.py", "string.py", "shlex.py", "heapq.py", "difflib.py")))
    return path


def test_a_one_file_corpus_trains_and_evaluates(config, one_file, tmp_path):
    config.data.update(path=str(one_file), validation_fraction=0.1)
    workdir = tmp_path / "run"
    metrics = run_lib.train_and_evaluate(config, str(workdir))
    assert math.isfinite(metrics["loss"]) and metrics["tokens"] > 0
    records = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "eval"]


def test_an_empty_split_fails_in_one_line_before_writing(config, one_file, tmp_path):
    config.data.update(path=str(one_file), validation_fraction=0.0)
    workdir = tmp_path / "run"
    with pytest.raises(UserError, match="split 'validation' of .* is empty") as error:
        run_lib.train_and_evaluate(config, str(workdir))
    assert "\n" not in str(error.value)
    assert not workdir.exists()
