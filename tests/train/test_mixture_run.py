"""A mixture run end to end: per-source eval metrics next to the overall ones in
metrics.jsonl; a bad mixture fails before the workdir exists."""

import json

import pytest

from transformer_jax import run as run_lib
from transformer_jax.errors import UserError


def _mixture(config, corpus, **extra):
    files = sorted(str(p) for p in corpus.iterdir())
    config.data.mixture = {
        "even": {"source": "local", "path": ",".join(files[::2]), "weight": 3.0,
                 "validation_fraction": 0.2, **extra},
        "odd": {"source": "local", "path": ",".join(files[1::2]), "weight": 1.0,
                "validation_fraction": 0.2},
    }
    return config


def test_a_mixture_run_logs_per_source_eval_metrics(config, corpus, tmp_path):
    workdir = tmp_path / "mix"
    config.train.steps = config.train.steps_per_call  # one call, one evaluation
    run_lib.train_and_evaluate(_mixture(config, corpus), str(workdir))
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["split"] == "eval"]
    assert evals
    for r in evals:
        assert r["even/bits_per_byte"] > 0 and r["odd/bits_per_byte"] > 0
        assert r["even/tokens"] + r["odd/tokens"] == r["tokens"]
        mean = (r["even/loss"] * r["even/tokens"] + r["odd/loss"] * r["odd/tokens"]) / r["tokens"]
        assert mean == pytest.approx(r["loss"], rel=1e-6)


def test_a_bad_mixture_fails_before_writing(config, corpus, tmp_path):
    workdir = tmp_path / "bad"
    with pytest.raises(UserError, match="data.mixture.even.tfds_nam is not a source key"):
        run_lib.setup_run(_mixture(config, corpus, tfds_nam="lm1b"), str(workdir))
    assert not workdir.exists()
