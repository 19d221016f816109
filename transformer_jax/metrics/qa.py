"""SQuAD v1.1 exact match and token F1 (the official evaluation script's normalization)."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalized strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    """F1 of the bags of normalized words."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if not common:
        return float(pred == gold)  # both empty counts as a match
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]
                  ) -> dict[str, float]:
    """Mean over questions of the best EM / F1 against any gold answer, in percent.

    Args:
      predictions: one answer string per question.
      answers: the gold answers of each question (at least one each).

    Returns:
      {"exact_match", "f1", "questions"}.
    """
    em = f1 = 0.0
    for prediction, golds in zip(predictions, answers, strict=True):
        em += max(exact_match(prediction, g) for g in golds)
        f1 += max(token_f1(prediction, g) for g in golds)
    n = max(len(predictions), 1)
    return {"exact_match": 100 * em / n, "f1": 100 * f1 / n, "questions": len(predictions)}
