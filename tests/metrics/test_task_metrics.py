"""Classification, tagging and SQuAD metrics against hand-computed values."""

import numpy as np
import pytest

from transformer_jax.metrics.classification import classification_report, entities, entity_f1
from transformer_jax.metrics.qa import normalize_answer, squad_metrics


def test_classification_report():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(labels, predictions, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"]) == (0.5, 0.5)
    assert (c["precision"], c["recall"], c["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_entities_and_entity_f1():
    assert entities(["B-PER", "I-PER", "O", "B-LOC", "I-ORG", "NAME"]) == {
        ("PER", 0, 2), ("LOC", 3, 4), ("ORG", 4, 5), ("NAME", 5, 6)}
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    scores = entity_f1(true, pred)
    assert scores["entity_precision"] == pytest.approx(2 / 3)  # PER span is cut short
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["word_accuracy"] == pytest.approx(5 / 6)


# CoNLL-2003 style (word, gold tag) sentences; predictions below perturb the tags.
CONLL = """EU B-ORG|rejects O|German B-MISC|call O|to O|boycott O|British B-MISC|lamb O|. O
Peter B-PER|Blackburn I-PER
BRUSSELS B-LOC|1996-08-22 O
The O|European B-ORG|Commission I-ORG|said O|on O|Thursday O|it O|disagreed O|with O|German B-MISC
Germany B-LOC|'s O|representative O|to O|the O|European B-ORG|Union I-ORG|'s O|veterinary O
Only O|France B-LOC|and O|Britain B-LOC|backed O|Fischler B-PER|'s O|proposal O|. O
Rabinovich B-PER|is O|winding O|up O|his O|term O|as O|ambassador O|in O|New B-LOC|York I-LOC"""


def test_entity_f1_agrees_with_seqeval_on_a_conll_sample():
    seqeval = pytest.importorskip("seqeval.metrics")
    gold = [[pair.rsplit(" ", 1)[1] for pair in line.split("|")] for line in CONLL.splitlines()]
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    for _ in range(20):  # including ill-formed predictions: I- after O, I-X after B-Y
        pred = [[t if rng.random() > 0.3 else str(rng.choice(tags)) for t in sentence]
                for sentence in gold]
        ours = entity_f1(gold, pred)
        assert ours["entity_precision"] == pytest.approx(seqeval.precision_score(gold, pred))
        assert ours["entity_recall"] == pytest.approx(seqeval.recall_score(gold, pred))
        assert ours["entity_f1"] == pytest.approx(seqeval.f1_score(gold, pred))


def test_squad_metrics():
    assert normalize_answer("The  Denmark, Iceland!") == "denmark iceland"
    scores = squad_metrics(["the France", "11th centuries", "nothing"],
                           [["France"], ["10th and 11th centuries"], ["Norway", "Denmark"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # F1 of "11th centuries" vs "10th and 11th centuries": p = 1, r = 1/2.
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
