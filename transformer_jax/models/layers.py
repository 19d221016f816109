"""Building blocks that carry logical axis names: dense projections, norms, embeddings.

Model code speaks only logical axis names; `transformer_jax.sharding.LOGICAL_AXIS_RULES`
maps them to mesh axes. Parameter axes:

  batch   B  (activations only)     embed  D   residual width
  length  T  (activations only)     heads  N   query heads
  vocab   V                         kv_heads K key/value heads
  mlp     F                         kv     H   per-head width
  layers  L  (added by nn.scan)

Activations use the `activation_*` names so that, e.g., parameters can be FSDP-sharded on
`embed` while activations are sharded on `batch`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models.config import ModelConfig
from transformer_jax.models.lora import LoraAdapter, LoraConfig

Axes = tuple[str | None, ...]

# The logical axes of a [B, T, D] activation.
ACT_BTD: Axes = ("activation_batch", "activation_length", "activation_embed")


def constrain(x: jax.Array, axes: Axes) -> jax.Array:
    """Annotates an activation with logical axes (a no-op outside a mesh/rules context)."""
    return nn.with_logical_constraint(x, axes)


def kernel_init(config: ModelConfig, axes: Axes) -> nn.initializers.Initializer:
    """Normal(init_std) initializer whose params carry `axes`."""
    return nn.with_logical_partitioning(nn.initializers.normal(config.init_std), axes)


class DenseGeneral(nn.Module):
    """y = x . kernel (+ bias), contracting `axis` of x with the kernel's leading dims.

    Flax's own DenseGeneral initializes a flattened kernel and reshapes it, which breaks
    logical sharding constraints on multi-dim kernels inside a mesh, so this one creates
    the kernel in its final shape.

    Attributes:
      features: output dims, e.g. (N, H).
      axis: input dims contracted, e.g. (-2, -1).
      kernel_axes: logical names of the kernel dims (contracted dims first).
      use_bias: add a bias over the output dims.
      dtype: compute dtype; param_dtype: storage dtype; init_std: normal init stddev.
      lora: LoRA settings; the layer adds an adapter when they target its kernel's path.
      deterministic: no adapter dropout (eval, decode).
    """

    features: tuple[int, ...]
    axis: tuple[int, ...]
    kernel_axes: Axes
    use_bias: bool
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    init_std: float
    lora: LoraConfig | None = None
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        axis = tuple(a % x.ndim for a in self.axis)
        kernel_shape = tuple(x.shape[a] for a in axis) + self.features
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.normal(self.init_std), self.kernel_axes),
            kernel_shape,
            self.param_dtype,
        )
        contract = (axis, tuple(range(len(axis))))
        y = jax.lax.dot_general(
            x.astype(self.dtype), kernel.astype(self.dtype), (contract, ((), ()))
        )
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(
                    nn.initializers.zeros_init(), self.kernel_axes[len(axis):]
                ),
                self.features,
                self.param_dtype,
            )
            y = y + bias.astype(self.dtype)
        if self.lora is not None and self.lora.adapts("/".join((*self.path, "kernel"))):
            y = y + LoraAdapter(self.lora, self.features, self.axis, self.kernel_axes,
                                self.dtype, self.param_dtype, self.deterministic,
                                name="lora")(x)
        return y


def dense(
    config: ModelConfig,
    features: int | Sequence[int],
    kernel_axes: Axes,
    *,
    axis: int | Sequence[int] = -1,
    use_bias: bool | None = None,
    name: str,
) -> DenseGeneral:
    """A `DenseGeneral` in the config's dtypes whose kernel/bias carry logical axes.

    Args:
      config: the model config (dtypes, init, biases).
      features: output feature dims, e.g. `(N, H)` for a query projection.
      kernel_axes: logical names of the kernel dims, input dims first.
      axis: input dims contracted, e.g. `(-2, -1)` for the attention output projection.
      use_bias: override `config.use_bias`.
      name: the submodule name.
    """
    return DenseGeneral(
        features=(features,) if isinstance(features, int) else tuple(features),
        axis=(axis,) if isinstance(axis, int) else tuple(axis),
        kernel_axes=tuple(kernel_axes),
        use_bias=config.use_bias if use_bias is None else use_bias,
        dtype=config.compute_dtype,
        param_dtype=config.params_dtype,
        init_std=config.init_std,
        lora=config.lora,
        deterministic=config.deterministic,
        name=name,
    )


def norm(config: ModelConfig, *, name: str) -> nn.Module:
    """LayerNorm or RMSNorm over the embed axis, per `config.norm` and `config.norm_eps`.

    `config.norm_two_pass` computes the variance as mean((x - mean)^2), as torch does;
    Flax's default mean(x^2) - mean^2 loses digits when |mean| >> std.
    """
    scale_init = nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",))
    if config.norm == "rmsnorm":
        return nn.RMSNorm(
            epsilon=config.norm_eps,
            dtype=config.compute_dtype,
            param_dtype=config.params_dtype,
            scale_init=scale_init,
            use_fast_variance=not config.norm_two_pass,
            name=name,
        )
    return nn.LayerNorm(
        epsilon=config.norm_eps,
        use_fast_variance=not config.norm_two_pass,
        dtype=config.compute_dtype,
        param_dtype=config.params_dtype,
        scale_init=scale_init,
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
        name=name,
    )


def embed(
    config: ModelConfig, num_embeddings: int, *, axes: Axes = ("vocab", "embed"), name: str
) -> nn.Embed:
    """A [num_embeddings, D] table (default axes `vocab`, `embed`); `.attend` gives logits."""
    return nn.Embed(
        num_embeddings=num_embeddings,
        features=config.d_model,
        dtype=config.compute_dtype,
        param_dtype=config.params_dtype,
        embedding_init=kernel_init(config, axes),
        name=name,
    )


def activation(name: str, x: jax.Array) -> jax.Array:
    """The pointwise nonlinearity `name` (the gated variants use their gate's function)."""
    if name in ("gelu", "geglu"):
        return jax.nn.gelu(x, approximate=False)
    if name in ("gelu_tanh", "geglu_tanh"):
        return jax.nn.gelu(x, approximate=True)
    if name == "relu":
        return jax.nn.relu(x)
    if name in ("silu", "swiglu"):
        return jax.nn.silu(x)
    raise ValueError(f"unknown activation {name!r}")


def dropout(config: ModelConfig, x: jax.Array) -> jax.Array:
    """Dropout at `config.dropout_rate`, off when `config.deterministic`."""
    if config.dropout_rate == 0.0 or config.deterministic:
        return x
    return nn.Dropout(rate=config.dropout_rate, deterministic=False)(x)


def as_compute(config: ModelConfig, x: jax.Array) -> jax.Array:
    """Casts to the compute dtype (e.g. bf16 activations from fp32 embeddings)."""
    return x.astype(config.compute_dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
