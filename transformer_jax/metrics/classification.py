"""Classification and tagging metrics in numpy: accuracy, P/R/F1, confusion, entity F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C, C]: rows are true labels, columns predictions.

    Args:
      labels: [N] int true classes.
      predictions: [N] int predicted classes.
      num_classes: C.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def classification_report(
    labels: np.ndarray, predictions: np.ndarray, names: Sequence[str]
) -> dict:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix.

    Args:
      labels: [N] int true classes in [0, C).
      predictions: [N] int predicted classes.
      names: the C class names (keys of the per-class metrics).

    Returns:
      {"accuracy", "macro_precision", "macro_recall", "macro_f1", "examples",
       "per_class": {name: {"precision", "recall", "f1", "support"}},
       "confusion_matrix": [[int]] (rows true, columns predicted)}. A class never predicted
      (or never present) has precision (recall) 0.
    """
    return report_from_confusion(confusion_matrix(labels, predictions, len(names)), names)


def report_from_confusion(matrix: np.ndarray, names: Sequence[str]) -> dict:
    """`classification_report` from an int [C, C] confusion matrix (rows true labels)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(0), matrix.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = _f1(precision, recall)
    total = int(matrix.sum())
    return {
        "accuracy": float(tp.sum() / max(total, 1)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "examples": total,
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f),
                   "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": matrix.tolist(),
    }


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) word spans of a tag sequence, conlleval style.

    "B-X" starts an entity, "I-X" continues one of type X (or starts one after anything
    else), "O" is outside; a tag without a B-/I- prefix is a one-word entity of that type
    (the stdlib token-type tags).
    """
    spans, current = set(), None  # current = [type, start]
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-") if tag[:2] in ("B-", "I-") else ("", "", tag)
        continues = prefix == "I" and current is not None and current[0] == kind
        if current is not None and not continues:
            spans.add((current[0], current[1], i))
            current = None
        if tag == "O" or continues:
            continue
        if prefix:
            current = [kind, i]
        else:
            spans.add((kind, i, i + 1))
    return spans


def entity_f1(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
              ) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 over sentences (exact span and type match).

    Args:
      true_tags: per sentence, the gold tag of each word.
      predicted_tags: per sentence, the predicted tag of each word (same lengths).

    Returns:
      {"entity_precision", "entity_recall", "entity_f1", "word_accuracy"}.
    """
    found = gold = correct = words = right = 0
    for true, pred in zip(true_tags, predicted_tags, strict=True):
        t, p = entities(true), entities(pred)
        found, gold, correct = found + len(p), gold + len(t), correct + len(t & p)
        words += len(true)
        right += sum(a == b for a, b in zip(true, pred, strict=True))
    precision = correct / found if found else 0.0
    recall = correct / gold if gold else 0.0
    f1 = float(_f1(np.asarray(precision), np.asarray(recall)))
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1,
            "word_accuracy": right / words if words else 0.0}
