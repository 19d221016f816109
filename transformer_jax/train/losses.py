"""Losses as weighted sums, so gradient accumulation and data parallelism stay exact.

Every loss returns `(sum over tokens of loss * weight, sum of weights)`; the caller divides
once over the whole (global, accumulated) batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def token_losses(
    logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0
) -> jax.Array:
    """Unweighted cross entropy of each position (natural-log units).

    Args:
      logits: [..., V] scores (any float dtype; computed in float32), e.g. [B, T, V] for
        tokens or [B, C] for classes.
      targets: [...] int ids.
      label_smoothing: mass spread uniformly over the V classes (0 disables).

    Returns:
      [...] float32 losses.
    """
    logits = logits.astype(jnp.float32)
    if label_smoothing:
        labels = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]), label_smoothing)
        return optax.softmax_cross_entropy(logits, labels)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets)


def cross_entropy(
    logits: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Weighted cross entropy as sums, the loss of every task.

    Args:
      logits: [..., V] scores, e.g. [B, T, V] next-token or [B, C] class logits.
      targets: [...] int ids.
      weights: [...] 0/1 (or real) weights; padding has weight 0.
      label_smoothing: mass spread uniformly over the V classes (0 disables).

    Returns:
      (loss_sum, weight_sum): scalars, natural-log units.
    """
    weights = weights.astype(jnp.float32)
    return jnp.sum(token_losses(logits, targets, label_smoothing) * weights), jnp.sum(weights)
