"""The MLP and the Transformer block (self-attention, optional cross-attention, MLP).

One block class serves all three families: `config.pre_ln` picks pre-LN (GPT-2: x + f(LN(x)))
or post-LN (BERT, original Transformer: LN(x + f(x))); `cross` adds encoder-decoder attention.
Shapes: B batch, T length, S source length, D d_model, F mlp width.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from transformer_jax.models import layers
from transformer_jax.models.attention import MultiHeadAttention
from transformer_jax.models.config import ModelConfig

GATED = ("swiglu", "geglu", "geglu_tanh")  # activation(x W_gate) * (x W_up)


class Mlp(nn.Module):
    """Position-wise feed-forward: D -> F -> D, plain or gated (SwiGLU/GeGLU/tanh-GeGLU)."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, D]."""
        cfg = self.config
        if cfg.activation in GATED:
            gate = layers.dense(cfg, cfg.mlp_dim, ("embed", "mlp"), name="wi_gate")(x)
            up = layers.dense(cfg, cfg.mlp_dim, ("embed", "mlp"), name="wi_up")(x)
            hidden = layers.activation(cfg.activation, gate) * up
        else:
            hidden = layers.dense(cfg, cfg.mlp_dim, ("embed", "mlp"), name="wi")(x)
            hidden = layers.activation(cfg.activation, hidden)
        hidden = layers.constrain(
            hidden, ("activation_batch", "activation_length", "activation_mlp")
        )  # [B, T, F]
        return layers.dense(cfg, cfg.d_model, ("mlp", "embed"), name="wo")(hidden)


class TransformerBlock(nn.Module):
    """Self-attention (+ cross-attention) + MLP, each a residual sublayer with a norm.

    Attributes:
      config: the model config.
      cross: add a cross-attention sublayer over `context` (decoder of an encoder-decoder).
    """

    config: ModelConfig
    cross: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None,
        positions: jax.Array | None,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
        bias: jax.Array | None = None,
    ) -> jax.Array:
        """One layer.

        Args:
          x: [B, T, D].
          mask: [B|1, 1, T, T] self-attention mask.
          positions: [B, T] (for RoPE).
          context: [B, S, D] encoder output (cross blocks only).
          context_mask: [B|1, 1, T, S] cross-attention mask.
          bias: [B|1, N, T, T] self-attention logits bias (relative positions), or None.

        Returns:
          [B, T, D].
        """
        cfg = self.config
        x = layers.constrain(x, layers.ACT_BTD)
        x = self._sublayer(
            x, "self_attention",
            lambda h: MultiHeadAttention(cfg, name="self_attention")(
                h, mask, positions, bias=bias
            ),
        )
        if self.cross:
            x = self._sublayer(
                x, "cross_attention",
                lambda h: MultiHeadAttention(cfg, cross=True, name="cross_attention")(
                    h, context_mask, context=context
                ),
            )
        return self._sublayer(x, "mlp", lambda h: Mlp(cfg, name="mlp")(h))

    def _sublayer(self, x: jax.Array, name: str, fn: Callable[[jax.Array], jax.Array]):
        """Pre-LN: x + drop(fn(LN(x))). Post-LN: LN(x + drop(fn(x)))."""
        cfg = self.config
        if cfg.pre_ln:
            return x + layers.dropout(cfg, fn(layers.norm(cfg, name=f"{name}_norm")(x)))
        return layers.norm(cfg, name=f"{name}_norm")(x + layers.dropout(cfg, fn(x)))
