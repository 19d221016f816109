"""Post-training int8 weight quantization: per-output-channel symmetric scales.

A quantized weight is the dict {"int8": q, "scale": s} in place of the float array w, with
q = round(w / s) in [-127, 127] and s = max|w| / 127 over the weight's input (contracted)
dims, one scale per output channel (kept with size-1 input dims, so q * s broadcasts):

  dense kernel [D, F] (or [D, N, H])  -> scale [1, F] ([1, N, H])  per output feature
  attention out kernel [N, H, D]      -> scale [1, 1, D]
  embedding table [V, D]              -> scale [V, 1]  per token (also the output channel
                                         of the tied logits x . E^T)
  scanned stacks add a leading layer axis L, which keeps its own scales.

Biases and norms stay float. `dequantize` turns the tree back into the model's params
(inside a jitted function, so only the int8 tree and the scales need to be stored), and
`dequantizing` wraps a module so that it dequantizes at every call (inside a decoding
loop, every step reads the int8 weights).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from transformer_jax.errors import UserError

SCHEMES = ("int8",)
GROUPS = ("dense", "embeddings", "output")  # what `quantize` may cover
_OUTPUT_MODULES = {"lm_head"}  # the untied output projection


def check_scheme(scheme: str | None) -> None:
    """UserError unless `scheme` is None/"" (float) or one of SCHEMES."""
    if scheme and scheme not in SCHEMES:
        raise UserError(f"--quantize={scheme!r} is not a scheme; use one of {SCHEMES} "
                        "(or leave it unset for float)")


def _group(path: tuple[str, ...]) -> str | None:
    """Which group a param belongs to (None: stays float)."""
    if path[-1] == "embedding":
        return "embeddings"
    if path[-1] != "kernel":
        return None
    return "output" if path[-2] in _OUTPUT_MODULES else "dense"


def _input_axes(path: tuple[str, ...], ndim: int) -> tuple[int, ...]:
    """The axes a weight's scale is shared over (its contracted/input dims)."""
    lead = 1 if "layers" in path else 0  # scanned stack: [L, ...]
    if path[-1] == "embedding":
        return (ndim - 1,)  # [.., V, D]: per token
    contracted = 2 if path[-2] == "out" else 1  # attention out contracts (N, H)
    return tuple(range(lead, lead + contracted))


def quantize_array(w: jax.Array, axes: tuple[int, ...]) -> dict[str, jax.Array]:
    """{"int8": [same shape] int8, "scale": float32, size 1 on `axes`}."""
    w = jnp.asarray(w, jnp.float32)
    scale = jnp.max(jnp.abs(w), axis=axes, keepdims=True) / 127.0
    scale = jnp.where(scale == 0, 1.0, scale)  # an all-zero channel stays exactly zero
    q = jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8)
    return {"int8": q, "scale": scale}


def quantize(params: Any, groups: tuple[str, ...] = GROUPS) -> dict:
    """The params with the weights of `groups` replaced by int8 + scales.

    Args:
      params: a model's float params (nested dicts; `nn.LogicallyPartitioned` boxes are
        unboxed).
      groups: any of "dense" (every projection kernel), "embeddings" (embedding tables;
        with tied embeddings also the output projection), "output" (an untied lm_head).

    Returns:
      The same tree, each selected leaf now {"int8", "scale"}.
    """
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise UserError(f"quantization groups {sorted(unknown)} unknown; use {GROUPS}")
    flat = traverse_util.flatten_dict(nn.unbox(params))  # boxed (logical axes) or plain
    out = {}
    for path, w in flat.items():
        if _group(path) in groups:
            for key, value in quantize_array(w, _input_axes(path, w.ndim)).items():
                out[(*path, key)] = value
        else:
            out[path] = w
    return traverse_util.unflatten_dict(out)


def _is_quantized(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"int8", "scale"}


def dequantize(qparams: Any, dtype: jnp.dtype = jnp.float32) -> Any:
    """The float params of a `quantize`d tree (q * scale), other leaves unchanged."""
    return jax.tree.map(
        lambda n: (n["int8"].astype(dtype) * n["scale"].astype(dtype)) if _is_quantized(n)
        else n, qparams, is_leaf=_is_quantized)


def nbytes(tree: Any) -> int:
    """Bytes of all arrays in a tree."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


class Dequantizing(nn.Module):
    """`module` taking a `quantize`d params tree, dequantized at each call.

    `Dequantizing(model).apply({"params": nest(qparams), ...}, ...)` computes what
    `model.apply({"params": dequantize(qparams), ...}, ...)` does (other collections, e.g.
    the decoding cache, nest the same way, under "module"), but the dequantization happens
    where the weights are used: inside a decoding loop every step reads the int8 weights.
    """

    wrapped: nn.Module

    @property
    def config(self) -> Any:
        """The wrapped model's config (what decoding reads)."""
        return self.wrapped.config

    @nn.compact
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fields = {f.name: getattr(self.wrapped, f.name) for f in dataclasses.fields(self.wrapped)
                  if f.name not in ("parent", "name")}
        inner = nn.map_variables(type(self.wrapped), "params", trans_in_fn=dequantize,
                                 init=self.is_initializing())(**fields, name="module")
        return inner(*args, **kwargs)


def nest(qparams: Any) -> dict:
    """The params tree `Dequantizing` takes: {"module": qparams}."""
    return {"module": qparams}
