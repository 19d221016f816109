"""Extractive QA: doc-stride features, token spans back to context characters, errors."""

import json

import numpy as np
import pytest

from tests.tasks.conftest import make_tokenizer, model_config, tiny_config, train
from transformer_jax.data import qa
from transformer_jax.errors import UserError
from transformer_jax.tasks.qa import QuestionAnswering

CONTEXT = ("The Normans were the people who in the 10th and 11th centuries gave their name to "
           "Normandy, a region in France. They were descended from Norse raiders and pirates "
           "from Denmark, Iceland and Norway. The café in Rouen served crêpes to Rollo, whose "
           "oath of fealty to King Charles III of West Francia came in 911.")
QAS = [("In what country is Normandy located?", "France"),
       ("When were the Normans in Normandy?", "10th and 11th centuries"),
       ("From which countries did the Norse originate?", "Denmark, Iceland and Norway"),
       ("What did the café serve?", "crêpes"),
       ("Who did Rollo swear fealty to?", "King Charles III")]


def squad(path, qas=QAS, context=CONTEXT, shift=0):
    path.write_text(json.dumps({"data": [{"title": "Normans", "paragraphs": [{
        "context": context, "qas": [
            {"id": f"q{i}", "question": q,
             "answers": [{"text": a, "answer_start": context.index(a) + shift}]}
            for i, (q, a) in enumerate(qas)]}]}]}))
    return path


@pytest.fixture
def config(tmp_path):
    c = tiny_config("qa", source="local", path=str(squad(tmp_path / "train.json")),
                    validation_path=str(squad(tmp_path / "dev.json")), doc_stride=8)
    c.train.eval_batches = None
    c.data.seq_len = c.model.max_len = 64
    return c


def test_token_offsets_cover_the_text(config):
    task = QuestionAnswering(config, model_config(config))
    tok = make_tokenizer(task)
    ids, offsets = qa.token_offsets(tok, CONTEXT)
    assert len(ids) == len(offsets)
    assert offsets[0, 0] == 0 and offsets[-1, 1] == len(CONTEXT)
    assert (offsets[1:, 0] >= offsets[:-1, 0]).all() and (offsets[:, 1] >= offsets[:, 0]).all()
    # Consecutive tokens tile the text (a multi-byte character may span several byte pieces).
    text = "".join(CONTEXT[s:e] for (s, e), (_, prev) in
                   zip(offsets, [(0, 0), *offsets[:-1]], strict=True) if s >= prev)
    assert text == CONTEXT


def test_doc_stride_spans_map_back_to_characters(config):
    task = QuestionAnswering(config, model_config(config))
    tok = make_tokenizer(task)
    features = task._features(task.train_questions, tok)
    windows = {q: 0 for q in range(len(QAS))}
    for i in range(len(features)):
        q, first, chars = features.window(i)
        windows[q] += 1
        ex = features[i]
        if ex["start"] == 0:
            continue
        # Oracle logits at the labelled span: the best span maps back to the answer.
        start, end = np.zeros(64), np.zeros(64)
        start[ex["start"]], end[ex["end"]] = 10.0, 10.0
        _, s, e = qa.best_span(start, end, first, len(chars), 30)
        assert CONTEXT[chars[s, 0]:chars[e, 1]].strip() == QAS[q][1]
        assert tok.decode(ex["tokens"][ex["start"]:ex["end"] + 1]).strip() == QAS[q][1]
    assert min(windows.values()) > 3  # the context needs several windows of 64 tokens
    labelled = {features.window(i)[0] for i in range(len(features)) if features[i]["start"]}
    assert labelled == set(range(len(QAS)))  # every answer fits in some window


def test_trains_and_evaluates(config, evaluate, placement):
    task = QuestionAnswering(config, model_config(config))
    tok = make_tokenizer(task)
    params, losses = train(task, tok, 40, learning_rate=2e-3)
    assert losses[-1] < losses[0]
    metrics = evaluate(task, tok, params)
    assert metrics["questions"] == len(QAS) and 0 <= metrics["f1"] <= 100
    answers = task.predict(placement, params, tok, [f"{QAS[0][0]}\t{CONTEXT}"])
    assert len(answers) == 1 and answers[0] in CONTEXT


def test_bad_inputs(tmp_path, config):
    with pytest.raises(UserError, match="answer 'France' at character .* is not in the context"):
        qa.read_squad(squad(tmp_path / "bad.json", qas=QAS[:1], shift=3))
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UserError, match="not SQuAD-format JSON"):
        qa.read_squad(tmp_path / "list.json")
    task = QuestionAnswering(config, model_config(config))
    with pytest.raises(UserError, match="question<TAB>context"):
        task.predict(None, None, None, ["no tab here"])
