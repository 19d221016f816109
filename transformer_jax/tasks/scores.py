"""Probabilities and top-k choices for `predict`'s output lines (classification, fill-mask)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transformer_jax.errors import UserError


def check_top_k(top_k: int, choices: int) -> int:
    """`top_k` (>= 1) capped at the number of choices; UserError when it is below 1."""
    if top_k < 1:
        raise UserError(f"--top_k={top_k}: predict shows the k most likely choices; "
                        "use --top_k=1 or more")
    return min(top_k, choices)


def top_k_probabilities(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most likely choices of each row, most likely first.

    Args:
      logits: [..., C] unnormalized log-probabilities.

    Returns:
      ids [..., k] (int) and their softmax probabilities [..., k] (float).
    """
    logits = np.asarray(logits, np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ids = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return ids, np.take_along_axis(probs, ids, -1)


def format_choices(names: Sequence[str], probs: Sequence[float], sep: str = "\t") -> str:
    """"name<TAB>0.873<TAB>other<TAB>0.101": each choice and its probability, `sep` between."""
    return sep.join(f"{n}{sep}{p:.3f}" for n, p in zip(names, probs, strict=True))
