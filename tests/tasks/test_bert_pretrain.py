"""BERT pretraining task: MLM + NSP training and metrics; encoders that init_from can copy."""

import ast
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tasks.conftest import STDLIB, make_tokenizer, model_config, tiny_config, train
from transformer_jax.errors import UserError
from transformer_jax.models.bert import (
    BertForPretraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from transformer_jax.models.config import from_preset
from transformer_jax.tasks.bert_pretrain import BertPretraining

QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""  # a Python repr of a str


@pytest.fixture
def corpus(tmp_path):
    for name in ("string.py", "textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py",
                 "bisect.py", "copy.py", "abc.py", "keyword.py", "queue.py", "sched.py"):
        (tmp_path / name).write_text((STDLIB / name).read_text())
    return tmp_path


def test_pretraining_trains_and_reports(corpus, evaluate, placement):
    c = tiny_config("bert_pretrain", source="local", path=str(corpus), validation_fraction=0.25)
    task = BertPretraining(c, model_config(c))
    tok = make_tokenizer(task)
    params, losses = train(task, tok, 40, learning_rate=3e-3)
    assert np.mean(losses[-5:]) < losses[0] - 1.0
    metrics = evaluate(task, tok, params)
    assert metrics["examples"] == 16  # eval_batches=2 batches of 8
    assert (metrics["eval_batches"], metrics["eval_complete"]) == (2, 0)  # a subset
    assert 0.0 < metrics["mlm_accuracy"] < 1.0 and 0.0 <= metrics["nsp_accuracy"] <= 1.0
    assert abs(metrics["loss"] - metrics["mlm_loss"]) < 1.5  # NSP adds ~log 2 per example
    (line,) = task.predict(placement, params, tok, ["import [MASK]\nx = [MASK](1)"], top_k=3)
    filled, *masks = line.split("\t")
    assert "[MASK]" not in filled and filled.startswith("import ") and "\n" not in line
    assert len(masks) == 2  # a field per [MASK]: its 3 best pieces, quoted, with probabilities
    for field in masks:
        choices = re.findall(rf"({QUOTED}) (\d\.\d{{3}})", field)
        assert len(choices) == 3, field
        probabilities = [float(p) for _, p in choices]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) < 1.002
        best = ast.literal_eval(choices[0][0])  # the filled-in piece, "▁" shown as a space
        assert best.startswith("<0x") or best.strip() in filled


def test_every_model_has_the_same_bert_encoder():
    """`init_from` copies the top-level `bert` subtree: same tree and shapes everywhere."""
    config = from_preset("bert_tiny", vocab_size=512, num_layers=2, d_model=32, num_heads=2,
                         mlp_dim=64, max_len=32)
    tokens = jnp.ones((1, 8), jnp.int32)

    def encoder(model):
        params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens))["params"]
        return jax.tree.map(lambda x: x.shape, params["bert"])

    pretrained = encoder(BertForPretraining(config))
    assert encoder(BertForSequenceClassification(config, 20)) == pretrained
    assert encoder(BertForTokenClassification(config, 7)) == pretrained
    assert encoder(BertForQuestionAnswering(config)) == pretrained


def test_not_a_bert_model_is_a_clear_error():
    c = tiny_config("bert_pretrain")
    c.model.preset = "gpt_tiny"
    with pytest.raises(UserError, match="trains BERT encoders"):
        BertPretraining(c, model_config(c))
