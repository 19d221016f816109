"""LoRA: a trainable low-rank update beside a frozen dense kernel (Hu et al., 2021).

A targeted `layers.DenseGeneral` computing y = x . W adds

    y += (alpha / r) * dropout(x) . A . B       A: [in..., r] (normal init), B: [r, out...] (zeros)

so the adapted model equals the base model at initialization, and `merge_params` folds the
update into W exactly (W' = W + (alpha / r) * A . B). The adapter's params live in a `lora`
submodule of the dense layer (`.../query/lora/a`, `.../query/lora/b`), so they follow the
layer everywhere: every family and task, scanned stacks (a leading `layers` axis, added by
`nn.scan`) and checkpoints. A carries the kernel's input logical axes and B its output axes,
so adapters are sharded like the kernel they adapt (the rank axis is replicated).

Which layers are adapted: `targets`, regular expressions searched in each kernel's parameter
path, e.g. `gpt/stack/layers_0/self_attention/query/kernel`.
"""

from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp

# The name of the adapter submodule of a dense layer, and of its two factors.
ADAPTER = "lora"
DOWN, UP = "a", "b"


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """What is adapted, and how.

    Attributes:
      rank: r, the adapter rank (> 0).
      alpha: the update is scaled by alpha / r.
      dropout: dropout on the adapter's input (training only).
      targets: regexes; a dense layer whose kernel path matches one (`re.search`) is adapted.
      trainable: regexes over parameter paths of other parameters trained in full (e.g. a
        fine-tuning run's fresh classifier head); everything else is frozen.
    """

    rank: int
    alpha: float
    dropout: float
    targets: tuple[str, ...]
    trainable: tuple[str, ...] = ()

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def adapts(self, kernel_path: str) -> bool:
        """Whether the dense layer whose kernel has this path (`a/b/kernel`) gets an adapter."""
        return any(re.search(pattern, kernel_path) for pattern in self.targets)


class LoraAdapter(nn.Module):
    """The low-rank update of one dense layer: `(alpha / r) * dropout(x) . A . B`.

    Attributes:
      config: the LoRA settings.
      features: the layer's output dims (out...).
      axis: the input dims of x the layer contracts.
      kernel_axes: the layer's kernel logical axes (input dims first).
      dtype: compute dtype; param_dtype: storage dtype.
      deterministic: no dropout (eval, decode).
    """

    config: LoraConfig
    features: tuple[int, ...]
    axis: tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    deterministic: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in...] -> the update [..., out...] (x's other dims first, like the layer)."""
        axis = tuple(a % x.ndim for a in self.axis)
        in_shape = tuple(x.shape[a] for a in axis)
        in_axes, out_axes = self.kernel_axes[:len(axis)], self.kernel_axes[len(axis):]
        r = self.config.rank
        fan_in = 1
        for size in in_shape:
            fan_in *= size
        # A ~ N(0, 1/fan_in) keeps x . A at x's scale; B = 0 makes the update start at zero.
        down = self.param(DOWN, nn.with_logical_partitioning(
            nn.initializers.normal(fan_in ** -0.5), (*in_axes, None)), (*in_shape, r),
            self.param_dtype)
        up = self.param(UP, nn.with_logical_partitioning(
            nn.initializers.zeros_init(), (None, *out_axes)), (r, *self.features),
            self.param_dtype)
        if self.config.dropout and not self.deterministic:
            x = nn.Dropout(rate=self.config.dropout, deterministic=False)(x)
        contract = (axis, tuple(range(len(axis))))
        low = jax.lax.dot_general(x.astype(self.dtype), down.astype(self.dtype),
                                  (contract, ((), ())))  # [..., r]
        y = jax.lax.dot_general(low, up.astype(self.dtype), (((low.ndim - 1,), (0,)), ((), ())))
        return y * jnp.asarray(self.config.scale, self.dtype)


def is_adapter_path(path: tuple[str, ...]) -> bool:
    """Whether a parameter path (tuple of names) is inside a LoRA adapter."""
    return ADAPTER in path[:-1] and path[-1] in (DOWN, UP)


def merge_params(params: dict, scale: float) -> dict:
    """Params with every adapter folded into its kernel and removed: W + scale * A . B.

    Args:
      params: a params tree holding `.../kernel` and `.../lora/{a, b}` siblings. A scanned
        stack's leaves have a leading layer axis L (A: [L, in..., r], B: [L, r, out...]).
      scale: alpha / rank.

    Returns:
      The plain params tree (no `lora` subtrees), kernels in their dtype.
    """
    if not isinstance(params, dict):
        return params
    merged = {k: merge_params(v, scale) for k, v in params.items() if k != ADAPTER}
    adapter = params.get(ADAPTER)
    if adapter is None:
        return merged
    kernel, down, up = params["kernel"], adapter[DOWN], adapter[UP]
    # A scanned stack's A [L, in..., r] and B [L, r, out...] have one more dim than
    # [in..., r] and [r, out...] would give the kernel.
    if down.ndim + up.ndim - 2 == kernel.ndim + 1:
        update = jax.vmap(lambda a, b: jnp.tensordot(a, b, axes=1))(down, up)
    else:
        update = jnp.tensordot(down, up, axes=1)
    merged["kernel"] = (kernel.astype(jnp.float32)
                        + scale * update.astype(jnp.float32)).astype(kernel.dtype)
    return merged
