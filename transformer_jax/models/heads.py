"""Task heads on top of encoder/decoder hidden states.

Shapes: B batch, T length, D d_model, V vocab, C classes/labels.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import layers
from transformer_jax.models.config import ModelConfig


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh on the first ([CLS]) token. [B, T, D] -> [B, D]."""

    config: ModelConfig

    @nn.compact
    def __call__(self, hidden: jax.Array) -> jax.Array:
        first = hidden[:, 0]
        return jnp.tanh(layers.dense(self.config, self.config.d_model, ("embed", "mlp"),
                                     use_bias=True, name="dense")(first))


class MlmHead(nn.Module):
    """BERT's masked-LM head: dense + GELU + LayerNorm, then the tied decoder plus a bias.

    Call with the hidden states and the token `Embedder` whose table is the decoder.
    [B, T, D] -> [B, T, V] float32 logits.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, hidden: jax.Array, embedder: nn.Module) -> jax.Array:
        cfg = self.config
        x = layers.dense(cfg, cfg.d_model, ("embed", "mlp"), use_bias=True, name="transform")(
            hidden
        )
        x = layers.norm(cfg, name="transform_norm")(layers.activation(cfg.activation, x))
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
            (cfg.vocab_size,), cfg.params_dtype,
        )
        return (embedder.attend(x) + bias).astype(jnp.float32)


class ClassifierHead(nn.Module):
    """A linear classifier (after dropout): NSP (C=2), sequence classification on pooled
    [B, D] features, or token classification / QA span logits on [B, T, D] features.

    Attributes:
      config: the model config.
      num_classes: C.
    """

    config: ModelConfig
    num_classes: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        """[..., D] -> [..., C] float32 logits."""
        x = layers.dropout(self.config, features)
        logits = layers.dense(self.config, self.num_classes, ("embed", None), use_bias=True,
                              name="dense")(x)
        return logits.astype(jnp.float32)
