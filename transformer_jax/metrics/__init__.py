"""Metrics: LM (perplexity, bits/byte), and per-task metrics in sibling modules."""

from transformer_jax.metrics.lm import bits_per_byte, perplexity

__all__ = ["bits_per_byte", "perplexity"]
