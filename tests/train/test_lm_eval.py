"""The lm-evaluation-harness adapter: its log-likelihoods are the project's eval sums, and the
harness runs offline on local YAML tasks through experiments.lm_eval."""

import json
import math

import jax
import numpy as np
import pytest

pytest.importorskip("lm_eval")

from experiments import lm_eval as lm_eval_cli
from experiments.configs import gpt_stdlib
from transformer_jax import run as run_lib
from transformer_jax.eval.lm_eval_adapter import RunDirLM

DOCS = ["def add(a, b):\n    return a + b\n", "import os\nprint(os.getcwd())\n"]


@pytest.fixture(scope="module")
def lm(corpus, tmp_path_factory):
    """A RunDirLM of a 6-step `:test` GPT run on the local corpus."""
    c = gpt_stdlib.get_config("test")
    c.data.update(source="local", path=str(corpus), validation_fraction=0.2)
    c.sample.max_new_tokens = 0
    c.data.tokenizer_cache_dir = str(tmp_path_factory.getbasetemp() / "cache")
    workdir = tmp_path_factory.mktemp("lm_eval") / "gpt"
    run_lib.train_and_evaluate(c, str(workdir))
    return RunDirLM(str(workdir), batch_size=4)


def _eval_loss_sum(lm, inputs, targets, scored_from=0):
    """The project's eval sums (`task.eval_sums`, i.e. tasks/lm.py:eval_step) of one row
    scoring targets[scored_from:], as a negative log-likelihood."""
    n = len(inputs)
    row = {k: np.zeros((1, n), np.int32) for k in ("inputs", "targets", "positions",
                                                   "segment_ids", "target_bytes")}
    row["inputs"][0], row["targets"][0], row["positions"][0] = inputs, targets, np.arange(n)
    row["segment_ids"][0, :] = 1
    model = lm.run.task.build_model(lm.model_config.replace(deterministic=True))
    with jax.set_mesh(lm.run.mesh):
        whole = lm.run.task.eval_sums(model, lm.params, row)["loss_sum"]
        row["segment_ids"][0, scored_from:] = 0  # the same row, scoring only the prefix
        prefix = lm.run.task.eval_sums(model, lm.params, row)["loss_sum"] if scored_from else 0
    return float(whole) - float(prefix)


def test_loglikelihoods_are_the_projects_eval_sums(lm):
    bos = lm.tokenizer.bos_id
    for doc in DOCS:
        ids = lm.tokenizer.encode(doc)
        want = -_eval_loss_sum(lm, [bos, *ids[:-1]], ids)
        (got,) = lm.loglikelihood_rolling([_Request(doc)])
        assert got == pytest.approx(want, rel=1e-5, abs=1e-4)
    # log p(continuation | context) = eval sum of the whole minus that of the context.
    context, continuation = lm._pair("def add(a, b):\n", "    return a + b")
    seq = context + continuation
    want = -_eval_loss_sum(lm, seq[:-1], seq[1:], scored_from=len(context) - 1)
    ((got, greedy),) = lm.loglikelihood([_Request("def add(a, b):\n", "    return a + b")])
    assert got == pytest.approx(want, rel=1e-5, abs=1e-4) and isinstance(greedy, bool)
    # A document longer than max_len is scored in windows; batching does not change scores.
    long_doc = "\n".join(DOCS * 20)
    assert len(lm.tokenizer.encode(long_doc)) > lm.max_len
    scores = lm.loglikelihood_rolling([_Request(d) for d in (long_doc, *DOCS)])
    assert scores[1:] == pytest.approx(
        [lm.loglikelihood_rolling([_Request(d)])[0] for d in DOCS], rel=1e-6)
    assert math.isfinite(scores[0]) and scores[0] < 0


class _Request:
    def __init__(self, *args):
        self.args = args


def test_harness_runs_local_yaml_tasks_offline(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    (tmp_path / "mc.jsonl").write_text(json.dumps(
        {"q": "def f(x):\n    return", "choices": [" x", " ]]]"], "label": 0}) + "\n")
    data = "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {}\ntest_split: test\n"
    (tmp_path / "tiny_rolling.yaml").write_text(
        "task: tiny_rolling\n" + data.format(tmp_path / "docs.jsonl")
        + 'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: bits_per_byte\n")
    (tmp_path / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n" + data.format(tmp_path / "mc.jsonl")
        + 'output_type: multiple_choice\ndoc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\nmetric_list:\n  - metric: acc\n')
    (tmp_path / "tiny_gen.yaml").write_text(
        "task: tiny_gen\n" + data.format(tmp_path / "mc.jsonl")
        + 'output_type: generate_until\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{choices[0]}}"\n'
        'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 4\n'
        "metric_list:\n  - metric: exact_match\n")
    workdir = str(lm.run.workdir)
    results, out = lm_eval_cli.evaluate(workdir, ["tiny_rolling", "tiny_mc", "tiny_gen"],
                                        include_path=str(tmp_path), batch_size=4)
    written = json.loads(out.read_text())
    assert out.parent == lm.run.workdir / "lm_eval" and written["step"] == 6
    rolling = sum(lm.loglikelihood_rolling([_Request(d) for d in DOCS]))
    nbytes = sum(len(d.encode()) for d in DOCS)
    assert written["results"]["tiny_rolling"]["bits_per_byte,none"] == pytest.approx(
        -rolling / nbytes / math.log(2), rel=1e-5)
    assert written["results"]["tiny_mc"]["acc,none"] in (0.0, 1.0)
    assert "exact_match,none" in results["results"]["tiny_gen"]
