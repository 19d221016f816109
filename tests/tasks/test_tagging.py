"""Token classification: sub-token label alignment, CoNLL reading, stdlib tags, training."""

import numpy as np
import pytest

from tests.tasks.conftest import make_tokenizer, model_config, tiny_config, train
from transformer_jax.data import tagging
from transformer_jax.errors import UserError
from transformer_jax.tasks.tagging import TokenClassification

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


@pytest.fixture
def conll(tmp_path):
    (tmp_path / "train.conll").write_text(CONLL * 20)
    (tmp_path / "dev.conll").write_text(CONLL)
    c = tiny_config("tagging", source="local", path=str(tmp_path / "train.conll"),
                    validation_path=str(tmp_path / "dev.conll"))
    return c, tmp_path


def test_labels_on_first_sub_token(conll):
    c, _ = conll
    task = TokenClassification(c, model_config(c))
    assert task.labels == ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    tok = make_tokenizer(task)
    features = tagging.TaggingFeatures(task.train_sentences, tok, 32)
    words = ["Blackburn", "rejects", "1996-08-22"]
    ex = features.featurize(words, [3, 5, 4])
    firsts = np.flatnonzero(ex["label_weights"])
    assert len(firsts) == 3 and ex["word_count"] == 3
    assert list(ex["labels"][firsts]) == [3, 5, 4]
    assert (ex["labels"][ex["label_weights"] == 0] == 0).all()
    ends = [*firsts[1:], int((ex["tokens"] != 0).sum()) - 1]
    assert any(e - f > 1 for f, e in zip(firsts, ends, strict=True))  # some word is split
    for word, f, e in zip(words, firsts, ends, strict=True):
        assert tok.decode(ex["tokens"][f:e]) == word  # the span of sub-tokens is the word
    short = tagging.TaggingFeatures(task.train_sentences, tok, 8).featurize(words, [3, 5, 4])
    n = int((short["tokens"] != 0).sum())
    assert short["word_count"] < 3 and short["label_weights"].sum() == short["word_count"]
    assert short["tokens"][n - 1] == tok.piece_id("[SEP]")  # whole words only, then [SEP]


def test_trains_evaluates_and_predicts(conll, evaluate, placement):
    c, _ = conll
    c.train.eval_batches = None
    task = TokenClassification(c, model_config(c))
    tok = make_tokenizer(task)
    params, losses = train(task, tok, 80, learning_rate=2e-3)
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    metrics = evaluate(task, tok, params)
    assert metrics["sentences"] == 3
    assert metrics["word_accuracy"] > 0.8 and 0 <= metrics["entity_f1"] <= 1
    (line,) = task.predict(placement, params, tok, ["EU rejects British lamb"])
    assert line.split()[0].startswith("EU/") and len(line.split()) == 4


def test_stdlib_python_tags():
    text = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    sentence = tagging.python_tags(text, 1, 3)
    assert sentence.words == ['"""Doc."""', "return", "x", "+", "1", "# one"]
    assert sentence.tags == ["STRING", "KEYWORD", "NAME", "OP", "NUMBER", "COMMENT"]
    assert set(sentence.tags) <= set(tagging.PYTHON_TAGS)


def test_bad_inputs(conll):
    c, tmp_path = conll
    (tmp_path / "bad.conll").write_text("EU B-ORG\nrejects B-VERB\n")
    c.data.validation_path = str(tmp_path / "bad.conll")
    with pytest.raises(UserError, match="tag 'B-VERB' is not in the tag set"):
        tagging.make_sentences(c.data, "validation")
    (tmp_path / "empty.conll").write_text("\n\n")
    c.data.path = str(tmp_path / "empty.conll")
    with pytest.raises(UserError, match="empty.conll has no sentences"):
        tagging.make_sentences(c.data, "train")
