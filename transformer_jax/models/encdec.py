"""The encoder-decoder Transformer of "Attention Is All You Need" on the shared layers.

One token table is shared by source and target, and by the output unless
`tie_embeddings=False` (Flan-T5's `lm_head`). Options for the Hugging Face families: a
decoder embedder with its own positions and norm (BART), T5's relative position bias (in
`Stack`), D**-0.5 scaling of the decoder output (T5 v1.0) and a final logits bias (BART,
Marian). Padding is `config.pad_id`. Shapes: B batch, S source length, T target length,
D d_model, V vocab.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import attention, layers
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
        if cfg.decoder_embedder:
            self.decoder_embedder = Embedder(cfg, own_tokens=False)
        if not cfg.tie_embeddings:
            self.lm_head = layers.dense(
                cfg, cfg.vocab_size, ("embed", "vocab"), use_bias=False, name="lm_head"
            )
        if cfg.final_logits_bias:
            self.final_logits_bias = self.param(
                "final_logits_bias",
                nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
                (cfg.vocab_size,),
                cfg.params_dtype,
            )        # The encoder always sees the whole source: no KV cache even when decoding.
        self.encoder = Stack(cfg.replace(decode=False), cfg.num_layers)
        self.decoder = Stack(cfg, cfg.decoder_layers, cross=True)

    def encode(self, source: jax.Array) -> jax.Array:
        """[B, S] source ids (`config.pad_id` = padding) -> [B, S, D]."""
        b, s = source.shape
        positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
        valid = source != self.config.pad_id
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
          source: [B, S] source ids (`config.pad_id` = padding), for the cross-attention
            mask.
          target_inputs: [B, T] target ids ([start] + target[:-1] when training). Target
            padding needs no mask: it comes after the real tokens, which attend causally, and
            its positions carry no loss weight (the start id may equal the pad id: T5).
          positions: [B, T] target positions (default 0..T-1; required when decoding).

        Returns:
          [B, T, V] float32 logits.
        """
        b, t = target_inputs.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        cfg = self.config
        self_mask = None if cfg.decode else attention.causal_mask(t)
        cross_mask = attention.padding_mask(jnp.ones((b, t), bool), source != cfg.pad_id)
        if cfg.decoder_embedder:
            x = self.decoder_embedder(
                target_inputs, positions,
                token_vectors=self.embedder.token_embed(target_inputs),
            )
        else:
            x = self.embedder(target_inputs, positions)
        x = self.decoder(x, self_mask, positions, encoded, cross_mask)
        return self.logits(x)

    def logits(self, x: jax.Array) -> jax.Array:
        """[B, T, D] decoder output -> [B, T, V] float32 logits."""
        cfg = self.config
        if cfg.scale_decoder_output:
            x = x * jnp.asarray(cfg.d_model**-0.5, x.dtype)
        logits = self.embedder.attend(x) if cfg.tie_embeddings else self.lm_head(x)
        logits = logits.astype(jnp.float32)
        if cfg.final_logits_bias:
            logits = logits + self.final_logits_bias.astype(jnp.float32)
        return logits

    def __call__(self, source: jax.Array, target_inputs: jax.Array) -> jax.Array:
        """[B, S], [B, T] -> [B, T, V] logits."""
        return self.decode(self.encode(source), source, target_inputs)
