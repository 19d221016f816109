"""T5's bucketed relative position bias, added to the attention logits.

One [buckets, N] table per stack (Hugging Face keeps it in layer 0 and shares it): the stack
computes the [B, N, T, S] bias once and every self-attention layer adds it to its logits.
The encoder's buckets are bidirectional, the decoder's causal. Shapes: B batch, T query
length, S key length, N heads.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import layers
from transformer_jax.models.config import ModelConfig


def relative_bucket(
    relative: jax.Array, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """The bucket of each relative position (key position - query position), as in T5.

    Half the buckets (per direction, when bidirectional) hold the exact distances
    0 .. max_exact - 1; the rest cover max_exact .. max_distance logarithmically, and
    longer distances share the last bucket.

    Args:
      relative: int array of key - query positions.
      bidirectional: separate buckets for keys after the query (encoder); else keys after
        the query fall in bucket 0 (they are masked anyway in a causal decoder).
      num_buckets: buckets in all.
      max_distance: the distance from which on all positions share a bucket.

    Returns:
      int32 buckets in [0, num_buckets), shaped like `relative`.
    """
    buckets = jnp.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).astype(relative.dtype) * num_buckets
        distance = jnp.abs(relative)
    else:
        distance = -jnp.minimum(relative, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # max(distance, 1): the log is only used where distance >= max_exact >= 1.
    scaled = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact) / jnp.log(
        max_distance / max_exact
    )
    large = max_exact + (scaled * (num_buckets - max_exact)).astype(relative.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return (buckets + jnp.where(is_small, distance, large)).astype(jnp.int32)


class RelativePositionBias(nn.Module):
    """The [B, N, T, S] logits bias of T5 from query and key positions.

    Attributes:
      config: the model config (heads, `relative_buckets`, `relative_max_distance`).
      bidirectional: True for the encoder, False for the causal decoder.
    """

    config: ModelConfig
    bidirectional: bool

    @nn.compact
    def __call__(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        """[B, T] query and [B|1, S] key positions -> [B, N, T, S] bias (compute dtype)."""
        cfg = self.config
        table = self.param(
            "embedding",
            layers.kernel_init(cfg, (None, "heads")),
            (cfg.relative_buckets, cfg.num_heads),
            cfg.params_dtype,
        )  # [buckets, N]
        relative = k_positions[:, None, :] - q_positions[:, :, None]  # [B, T, S]
        buckets = relative_bucket(
            relative, bidirectional=self.bidirectional, num_buckets=cfg.relative_buckets,
            max_distance=cfg.relative_max_distance,
        )
        bias = jnp.take(table, buckets, axis=0)  # [B, T, S, N]
        return jnp.transpose(bias, (0, 3, 1, 2)).astype(cfg.compute_dtype)
