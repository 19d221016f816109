"""The encoder-decoder Transformer of "Attention Is All You Need" on the shared layers.

One embedding table is shared by source, target and output (three-way tying). Shapes:
B batch, S source length, T target length, D d_model, V vocab.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import attention
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.embedder import Embedder
from transformer_jax.models.stack import Stack


class EncoderDecoder(nn.Module):
    """Encoder over the source, decoder with causal self-attention and cross-attention.

    With `config.decode=True` the decoder keeps two caches (initialize both with `init` on a
    [B, S] source and a [B, max_target_len] target): the self-attention KV cache, appended to
    at every step, and the cross-attention keys/values of the encoder output, computed on the
    first `decode` call (pass `encoded`) and reused on later calls (pass `encoded=None`).
    See `transformer_jax/decoding/seq2seq.py`.
    """

    config: ModelConfig

    def setup(self) -> None:
        cfg = self.config
        self.embedder = Embedder(cfg)
        # The encoder always sees the whole source: no KV cache even when decoding.
        self.encoder = Stack(cfg.replace(decode=False), cfg.num_layers)
        self.decoder = Stack(cfg, cfg.decoder_layers, cross=True)

    def encode(self, source: jax.Array) -> jax.Array:
        """[B, S] source ids (0 = padding) -> [B, S, D]."""
        b, s = source.shape
        positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
        valid = source != 0
        x = self.embedder(source, positions)
        return self.encoder(x, attention.padding_mask(valid, valid), positions)

    def decode(
        self,
        encoded: jax.Array | None,
        source: jax.Array,
        target_inputs: jax.Array,
        positions: jax.Array | None = None,
    ) -> jax.Array:
        """Next-token logits for the (shifted) target inputs.

        Args:
          encoded: [B, S, D] encoder output; None when decoding with a filled cross cache.
          source: [B, S] source ids (0 = padding), for the cross-attention mask.
          target_inputs: [B, T] target ids ([bos] + target[:-1] when training).
          positions: [B, T] target positions (default 0..T-1; required when decoding).

        Returns:
          [B, T, V] float32 logits.
        """
        b, t = target_inputs.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        target_valid = jnp.ones((b, t), bool) if self.config.decode else target_inputs != 0
        self_mask = None
        if not self.config.decode:
            self_mask = attention.combine_masks(
                attention.causal_mask(t), attention.padding_mask(target_valid, target_valid)
            )
        cross_mask = attention.padding_mask(target_valid, source != 0)
        x = self.embedder(target_inputs, positions)
        x = self.decoder(x, self_mask, positions, encoded, cross_mask)
        return self.embedder.attend(x).astype(jnp.float32)

    def __call__(self, source: jax.Array, target_inputs: jax.Array) -> jax.Array:
        """[B, S], [B, T] -> [B, T, V] logits."""
        return self.decode(self.encode(source), source, target_inputs)
