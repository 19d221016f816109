"""Losses as weighted sums, so gradient accumulation and data parallelism stay exact.

Every loss returns `(sum over tokens of loss * weight, sum of weights)`; the caller divides
once over the whole (global, accumulated) batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(
    logits: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Weighted token cross entropy.

    Args:
      logits: [B, T, V] (any float dtype; computed in float32).
      targets: [B, T] int ids.
      weights: [B, T] 0/1 (or real) weights; padding has weight 0.
      label_smoothing: mass spread uniformly over the vocabulary (0 disables).

    Returns:
      (loss_sum, weight_sum): scalars, natural-log units.
    """
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    if label_smoothing:
        vocab = logits.shape[-1]
        labels = optax.smooth_labels(jax.nn.one_hot(targets, vocab), label_smoothing)
        losses = optax.softmax_cross_entropy(logits, labels)
    else:
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(losses * weights), jnp.sum(weights)
