"""Picking the next token from logits: greedy, temperature, top-k, top-p (nucleus).

Shapes: B batch, V vocab.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from transformer_jax.errors import UserError


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """UserError naming the first sampling setting outside its range."""
    if not temperature >= 0.0:
        raise UserError(f"--temperature={temperature}: use 0 (greedy) or a positive value")
    if top_k < 0:
        raise UserError(f"--top_k={top_k}: use 0 (all tokens) or a positive count")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"--top_p={top_p}: use a probability mass in (0, 1] (1 = all)")


def sample_logits(
    logits: jax.Array, rng: jax.Array, *, temperature: float, top_k: int, top_p: float
) -> jax.Array:
    """Picks one token per row.

    Args:
      logits: [B, V] float32.
      rng: PRNG key.
      temperature: 0 means greedy (argmax); otherwise logits are divided by it.
      top_k: keep only the k most likely tokens (0 = all).
      top_p: keep the smallest set of tokens whose probability reaches top_p (1 = all).

    Returns:
      [B] int32 token ids.
    """
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    neg_inf = jnp.finfo(logits.dtype).min
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]  # [B, 1]
        logits = jnp.where(logits < kth, neg_inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]  # [B, V] descending
        cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        # Keep a token if the mass strictly before it is < top_p (always keeps the best).
        keep_sorted = (cumulative - jax.nn.softmax(sorted_logits, axis=-1)) < top_p
        cutoff = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < cutoff, neg_inf, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)
