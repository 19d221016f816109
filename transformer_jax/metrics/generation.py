"""Metrics of generated text: corpus BLEU (sacrebleu) and ROUGE-1/2/L F-measure (rouge-score).

Both are the libraries' standard implementations, so numbers compare with published ones:
BLEU is reported with its sacrebleu signature (tokenizer, smoothing, version); ROUGE is the
mean per-example F-measure with the Porter stemmer, as in the summarization literature.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu

from transformer_jax.errors import UserError

# rougeLsum: the union LCS over sentences, which are the lines of a text (the CNN/DailyMail
# and XSum papers' ROUGE-L); rougeL treats each text as one sequence.
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise UserError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: they must align"
        )


def bleu_signature() -> str:
    """The sacrebleu signature of `bleu` (tokenizer, smoothing, sacrebleu version)."""
    return bleu(["a"], ["a"])[1]  # sacrebleu knows its signature only after scoring


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """Corpus BLEU of detokenized text against one reference each.

    Args:
      hypotheses: N system outputs.
      references: N references, aligned with `hypotheses`.

    Returns:
      (BLEU in [0, 100], the sacrebleu signature, e.g.
      "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0").
    """
    _check(hypotheses, references)
    metric = sacrebleu.BLEU()
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return float(score.score), str(metric.get_signature())


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measures (in [0, 100]) over the examples.

    Args:
      hypotheses: N system outputs.
      references: N references, aligned with `hypotheses`.

    Returns:
      {"rouge1": .., "rouge2": .., "rougeL": .., "rougeLsum": ..} (Lsum: sentences are the
      lines of each text, newline-separated); all 0 for N = 0.
    """
    _check(hypotheses, references)
    # Imported here: rouge-score imports nltk and scipy (~5 s), which every run that loads
    # the task registry would otherwise pay.
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hyp, ref in zip(hypotheses, references, strict=True):
        for name, score in scorer.score(ref, hyp).items():
            totals[name] += score.fmeasure
    n = max(len(hypotheses), 1)
    return {name: 100.0 * total / n for name, total in totals.items()}
