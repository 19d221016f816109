"""BLEU (sacrebleu) and ROUGE (rouge-score) wiring, checked against hand-computed values."""

import numpy as np
import pytest

from transformer_jax.errors import UserError
from transformer_jax.metrics import generation


def test_bleu_matches_hand_computation_and_reports_its_signature():
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty):
    # BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4) = (1/12) ** 0.25.
    score, signature = generation.bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    np.testing.assert_allclose(score, 100 * (1 / 12) ** 0.25, rtol=1e-6)
    assert generation.bleu(["a b c d"], ["a b c d"])[0] == pytest.approx(100.0)
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert signature == generation.bleu_signature()


def test_rouge_matches_hand_computation():
    scores = generation.rouge(["the cat sat", "x"], ["the cat sat on the mat", "y"])
    # Example 1: R1 P=1 R=1/2 -> F=2/3; R2 P=1 R=2/5 -> F=4/7; LCS 3 -> F=2/3. Example 2: 0.
    np.testing.assert_allclose(scores["rouge1"], 100 * (2 / 3) / 2, rtol=1e-6)
    np.testing.assert_allclose(scores["rouge2"], 100 * (4 / 7) / 2, rtol=1e-6)
    np.testing.assert_allclose(scores["rougeL"], 100 * (2 / 3) / 2, rtol=1e-6)
    # The Porter stemmer makes inflections match.
    assert generation.rouge(["returns values"], ["return value"])["rouge1"] == 100.0


def test_misaligned_hypotheses_are_an_error():
    with pytest.raises(UserError, match="2 hypotheses but 1 references"):
        generation.bleu(["a", "b"], ["a"])


def test_rouge_lsum_scores_sentences_as_lines():
    """Sentences in swapped order: one LCS over the whole text finds half, the union of
    per-sentence LCSs finds all."""
    scores = generation.rouge(["c d\na b"], ["a b\nc d"])
    np.testing.assert_allclose(scores["rougeL"], 50.0, rtol=1e-6)
    np.testing.assert_allclose(scores["rougeLsum"], 100.0, rtol=1e-6)
    one_line = generation.rouge(["the cat sat"], ["the cat sat on the mat"])
    assert one_line["rougeLsum"] == pytest.approx(one_line["rougeL"])  # one sentence: equal
