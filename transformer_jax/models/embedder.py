"""The embedder every family shares: token, position and token-type embeddings; tied logits.

Shapes: B batch, T length, D d_model, V vocab.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import layers, position
from transformer_jax.models.config import ModelConfig


class Embedder(nn.Module):
    """Token (+ learned/sinusoidal position, + token type) embeddings, then norm and dropout.

    Shared by all three families. `attend` turns [.., D] hidden states into [.., V] logits
    with the (tied) token table.

    Attributes:
      config: the model config.
      own_tokens: holds the token table; False for BART's decoder embedder, which has its
        own positions and norm but takes its token vectors from the shared table.
    """

    config: ModelConfig
    own_tokens: bool = True

    def setup(self) -> None:
        cfg = self.config
        if self.own_tokens:
            self.token_embed = layers.embed(cfg, cfg.vocab_size, name="token_embed")
        if cfg.position == "learned":
            self.position_embed = layers.embed(
                cfg, cfg.max_len + cfg.position_offset, axes=(None, "embed"),
                name="position_embed",
            )
        if cfg.type_vocab_size:
            self.type_embed = layers.embed(
                cfg, cfg.type_vocab_size, axes=(None, "embed"), name="type_embed"
            )
        if cfg.embed_norm:
            self.norm = layers.norm(cfg, name="embed_norm")
        self.drop = nn.Dropout(rate=cfg.dropout_rate)

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        token_types: jax.Array | None = None,
        token_vectors: jax.Array | None = None,
    ) -> jax.Array:
        """[B, T] ids and positions (and token types) -> [B, T, D] in the compute dtype.

        `token_vectors` ([B, T, D], unscaled) replaces the token lookup (`own_tokens=False`).
        """
        cfg = self.config
        x = self.token_embed(tokens) if token_vectors is None else token_vectors
        if cfg.scale_embeddings:
            x = x * jnp.sqrt(cfg.d_model).astype(x.dtype)
        if cfg.position == "learned":
            x = x + self.position_embed(positions + cfg.position_offset)
        elif cfg.position == "sinusoidal":
            x = x + position.sinusoidal(
                positions, cfg.d_model, timescales=cfg.sinusoidal_timescales
            ).astype(x.dtype)
        if cfg.type_vocab_size:
            types = jnp.zeros_like(tokens) if token_types is None else token_types
            x = x + self.type_embed(types)
        if cfg.embed_norm:
            x = self.norm(x)
        if cfg.dropout_rate and not cfg.deterministic:
            x = self.drop(x, deterministic=False)
        return layers.constrain(layers.as_compute(cfg, x), layers.ACT_BTD)

    def attend(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, V] logits against the token table."""
        return self.token_embed.attend(x)
