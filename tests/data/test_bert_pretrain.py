"""BERT pretraining data: NSP balance, 80/10/10 masking statistics, determinism."""

import numpy as np
import pytest

from tests.data.conftest import ListSource
from transformer_jax.data import bert_pretrain, tokenizer
from transformer_jax.errors import UserError


@pytest.fixture(scope="module")
def docs(stdlib_train) -> list[str]:
    return [stdlib_train[i] for i in range(0, 400, 4)]


@pytest.fixture(scope="module")
def bert_tokenizer(docs) -> tokenizer.Tokenizer:
    return tokenizer.train_tokenizer(docs, 512, max_chars=200_000,
                                     user_defined_symbols=bert_pretrain.SPECIAL_TOKENS)


@pytest.fixture(scope="module")
def examples(docs, bert_tokenizer):
    return bert_pretrain.pretraining_dataset(ListSource(docs), bert_tokenizer, seq_len=64,
                                             segment_lines=3, seed=7)


def test_layout_and_nsp_balance(examples, bert_tokenizer):
    cls, sep = bert_tokenizer.piece_id("[CLS]"), bert_tokenizer.piece_id("[SEP]")
    labels = []
    for i in range(0, len(examples), max(1, len(examples) // 1500)):
        ex = examples[i]
        targets, types = ex["mlm_targets"], ex["token_types"]
        n = int((targets != 0).sum())
        assert targets[0] == cls and targets[n - 1] == sep and (targets[n:] == 0).all()
        seps = np.flatnonzero(targets == sep)
        assert len(seps) == 2 and (types[:seps[0] + 1] == 0).all()
        assert (types[seps[0] + 1:n] == 1).all()
        assert ex["mlm_weights"][[0, *seps]].sum() == 0  # specials are never selected
        labels.append(int(ex["nsp_label"]))
    assert len(labels) > 1000
    assert abs(np.mean(labels) - 0.5) < 0.04


def test_masking_statistics(examples, bert_tokenizer):
    mask = bert_tokenizer.piece_id("[MASK]")
    selected = candidates = masked = randomized = kept = 0
    for i in range(0, len(examples), max(1, len(examples) // 1500)):
        ex = examples[i]
        w = ex["mlm_weights"] > 0
        targets, tokens = ex["mlm_targets"], ex["tokens"]
        assert (tokens[~w] == targets[~w]).all()  # only selected positions change
        candidates += int((targets != 0).sum()) - 3
        selected += int(w.sum())
        masked += int((tokens[w] == mask).sum())
        kept += int((tokens[w] == targets[w]).sum())
        randomized += int(((tokens[w] != mask) & (tokens[w] != targets[w])).sum())
    assert abs(selected / candidates - 0.15) < 0.01
    assert abs(masked / selected - 0.8) < 0.02
    # A random replacement can draw the original token (p ~ 1/500): within tolerance.
    assert abs(randomized / selected - 0.1) < 0.015
    assert abs(kept / selected - 0.1) < 0.015


def test_deterministic_given_seed(docs, bert_tokenizer, examples):
    again = bert_pretrain.pretraining_dataset(ListSource(docs), bert_tokenizer, seq_len=64,
                                              segment_lines=3, seed=7)
    other = bert_pretrain.pretraining_dataset(ListSource(docs), bert_tokenizer, seq_len=64,
                                              segment_lines=3, seed=8)
    for i in (0, 17, 99):
        for key in examples[i]:
            np.testing.assert_array_equal(examples[i][key], again[i][key])
    assert any((examples[i]["tokens"] != other[i]["tokens"]).any() for i in range(10))


def test_bad_inputs(bert_tokenizer, code_tokenizer):
    with pytest.raises(UserError, match="2 documents"):
        bert_pretrain.pretraining_dataset(ListSource(["a\nb\nc\nd"]), bert_tokenizer,
                                          seq_len=64, segment_lines=1, seed=0)
    with pytest.raises(UserError, match=r"\[CLS\]"):
        bert_pretrain.pretraining_dataset(ListSource(["a\nb", "c\nd"]), code_tokenizer,
                                          seq_len=64, segment_lines=1, seed=0)
