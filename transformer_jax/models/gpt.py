"""GPT: a decoder-only causal language model (GPT-2 exactly, or modern variants by config).

Shapes: B batch, T length, D d_model, V vocab.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import attention, layers
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.embedder import Embedder
from transformer_jax.models.stack import Stack


class GPT(nn.Module):
    """Decoder-only Transformer LM.

    Call with `tokens` [B, T]; for packed sequences also pass `segment_ids` and `positions`
    [B, T] so attention never crosses documents. With `config.decode=True` the model keeps a
    KV cache: initialize it on a [B, max_decode_len] input, then call it on chunks, passing
    their absolute `positions`.
    """

    config: ModelConfig

    @nn.compact
    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        cache_valid: jax.Array | None = None,
    ) -> jax.Array:
        """Next-token logits.

        Args:
          tokens: [B, T] int token ids.
          positions: [B, T] positions (default 0..T-1; required when decoding).
          segment_ids: [B, T] packed-document ids, 0 = padding (default: one document).
          cache_valid: when decoding, [B, max_decode_len] booleans over the cache's
            positions, False = padding (left-padded prompts); None: all real.

        Returns:
          [B, T, V] logits in float32.
        """
        cfg = self.config
        b, t = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        mask = None
        if not cfg.decode:
            seg = None if segment_ids is None else attention.segment_mask(segment_ids, segment_ids)
            mask = attention.combine_masks(attention.causal_mask(t), seg)
        elif cache_valid is not None:
            mask = cache_valid[:, None, None, :]  # [B, 1, 1, S_cache]: a key mask
        embedder = Embedder(cfg, name="embedder")
        x = embedder(tokens, positions)
        x = Stack(cfg, cfg.num_layers, name="decoder")(x, mask, positions)
        if cfg.tie_embeddings:
            logits = embedder.attend(x)
        else:
            logits = layers.dense(cfg, cfg.vocab_size, ("embed", "vocab"), use_bias=False,
                                  name="lm_head")(x)
        logits = layers.constrain(
            logits, ("activation_batch", "activation_length", "activation_vocab")
        )
        return logits.astype(jnp.float32)
