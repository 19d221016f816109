"""A stack of Transformer blocks: `nn.scan` over layers (or unrolled) with an `nn.remat` policy.

Scanning compiles one layer instead of L (fast compiles, params stacked on a leading
`layers` axis); unrolling gives per-layer names `layers_0..layers_{L-1}` (what checkpoint
converters expect). `tests/models/test_gpt.py` checks the two give equal outputs.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import layers
from transformer_jax.models.blocks import TransformerBlock
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.relative_position import RelativePositionBias

REMAT_POLICIES = {
    # "full": save nothing, recompute the whole layer in the backward pass.
    "full": jax.checkpoint_policies.nothing_saveable,
    # "dots": save every matmul output, recompute only the cheap elementwise ops.
    "dots": jax.checkpoint_policies.checkpoint_dots,
    # "dots_with_no_batch_dims": save projections' outputs but not attention logits/probs
    # (the [B, N, T, S] tensors that dominate memory at long context).
    "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class _ScannedBlock(nn.Module):
    """Adapts `TransformerBlock` to the `(carry, *broadcast) -> (carry, out)` scan signature."""

    config: ModelConfig
    cross: bool = False

    @nn.compact
    def __call__(self, x, mask, positions, context, context_mask, bias):
        block = _block_class(self.config, scanned=True)
        x = block(self.config, self.cross, name="block")(
            x, mask, positions, context, context_mask, bias
        )
        return x, None


def _block_class(config: ModelConfig, *, scanned: bool) -> type[nn.Module]:
    if config.remat_policy == "none":
        return TransformerBlock
    # Under scan, CSE across iterations is impossible anyway; prevent_cse=False lets XLA
    # optimize more (the Flax guidance for remat inside scan).
    return nn.remat(
        TransformerBlock, policy=REMAT_POLICIES[config.remat_policy], prevent_cse=not scanned
    )


class Stack(nn.Module):
    """L Transformer blocks, followed by a final norm when `config.final_norm`.

    With `config.position == "relative"` the stack owns T5's relative position bias table
    and computes the bias once for all its layers: bidirectional in an encoder stack, causal
    in a decoder (`cross`) stack.

    Attributes:
      config: the model config.
      num_layers: L.
      cross: decoder blocks with cross-attention.
    """

    config: ModelConfig
    num_layers: int
    cross: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None,
        positions: jax.Array | None,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
    ) -> jax.Array:
        """[B, T, D] -> [B, T, D]; arguments as in `TransformerBlock`."""
        cfg = self.config
        bias = None
        if cfg.position == "relative":
            # Decoding: keys are the KV cache's positions 0 .. max_len - 1 (attention.py).
            keys = jnp.arange(cfg.max_len)[None] if cfg.decode else positions
            bias = RelativePositionBias(
                cfg, bidirectional=not self.cross, name="relative_position_bias"
            )(positions, keys)  # [B, N, T, S]
        if cfg.scan_layers:
            scanned = nn.scan(
                _ScannedBlock,
                variable_axes={"params": 0, "cache": 0, "intermediates": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,) * 5,
                length=self.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, _ = scanned(cfg, self.cross, name="layers")(
                x, mask, positions, context, context_mask, bias
            )
        else:
            block = _block_class(cfg, scanned=False)
            for i in range(self.num_layers):
                x = block(cfg, self.cross, name=f"layers_{i}")(
                    x, mask, positions, context, context_mask, bias
                )
        if cfg.final_norm:
            x = layers.norm(cfg, name="final_norm")(x)
        return x


def unscan_params(stack_params: dict, num_layers: int) -> dict:
    """Converts a scanned stack's params ({"layers": {"block": [L, ...]}}) to unrolled ones.

    Args:
      stack_params: the params of one `Stack` built with `scan_layers=True`.
      num_layers: L.

    Returns:
      The same values named `layers_0 .. layers_{L-1}` (+ `final_norm`), as a
      `scan_layers=False` stack expects.
    """
    out = {k: v for k, v in stack_params.items() if k != "layers"}
    block = stack_params["layers"]["block"]
    for i in range(num_layers):
        out[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], block)
    return out
