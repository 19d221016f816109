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


def test_squad_metrics():
    assert normalize_answer("The  Denmark, Iceland!") == "denmark iceland"
    scores = squad_metrics(["the France", "11th centuries", "nothing"],
                           [["France"], ["10th and 11th centuries"], ["Norway", "Denmark"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # F1 of "11th centuries" vs "10th and 11th centuries": p = 1, r = 1/2.
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
