"""Putting converted tensors straight into their target shardings, and taking them back out.

Import: the family yields (unrolled path, thunk) pairs; each thunk's array is placed with
`jax.make_array_from_callback` (each device receives only its own slice) before the next
thunk runs, so at most one converted tensor is alive on the host. For a scanned target
(`scan_layers=True`: the stack's params are `layers/block/...` stacked on a leading `layers`
axis) each layer is written into its slot of the stacked, already-sharded array.

Export: params -> unrolled host numpy arrays (what `HFFamily.export` takes).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.sharding import NamedSharding, PartitionSpec

from transformer_jax.errors import UserError
from transformer_jax.interop.family import ParamPath

_LAYER = re.compile(r"layers_(\d+)$")


def scanned_path(path: ParamPath) -> tuple[ParamPath, int | None]:
    """The scanned-layout path of an unrolled one, and its layer index (None: not a layer).

    ("decoder", "layers_3", "mlp", "wi", "kernel") -> (("decoder", "layers", "block", "mlp",
    "wi", "kernel"), 3).
    """
    for k, part in enumerate(path):
        if m := _LAYER.match(part):
            return (*path[:k], "layers", "block", *path[k + 1:]), int(m.group(1))
    return path, None


def _put(value: np.ndarray, shape: tuple[int, ...], dtype, sharding: NamedSharding) -> jax.Array:
    """`value` as a global array laid out by `sharding`; each device gets only its slice."""
    value = np.asarray(value, dtype)
    return jax.make_array_from_callback(shape, sharding, lambda index: value[index])


@jax.jit
def _write_layer(stacked: jax.Array, layer: jax.Array, index: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_index_in_dim(stacked, layer, index, 0)


def place_params(
    entries: Iterable[tuple[ParamPath, Callable[[], np.ndarray]]],
    abstract: Any,
    shardings: Any,
) -> Any:
    """The params tree `abstract` describes, filled from `entries`, in `shardings`.

    Args:
      entries: (unrolled path, thunk) for every leaf, as `HFFamily.import_params` yields.
      abstract: the target params tree of `ShapeDtypeStruct`s (scanned or unrolled layout).
      shardings: the matching tree of `NamedSharding`s.

    Returns:
      The params tree of global `jax.Array`s.

    Raises:
      UserError: a tensor has the wrong shape, or some target leaves are never given.
    """
    targets = traverse_util.flatten_dict(abstract)
    target_shardings = traverse_util.flatten_dict(shardings)
    out: dict[ParamPath, jax.Array] = {}
    filled: dict[ParamPath, set[int]] = {}
    for path, build in entries:
        target_path, layer = scanned_path(path)
        if target_path not in targets:
            target_path, layer = path, None
        if target_path not in targets:
            raise UserError(f"the converter produced {'/'.join(path)}, which this model "
                            "does not have")
        spec, sharding = targets[target_path], target_shardings[target_path]
        shape = spec.shape[1:] if layer is not None else spec.shape
        value = build()
        if tuple(value.shape) != tuple(shape):
            raise UserError(f"{'/'.join(path)}: the checkpoint gives shape "
                            f"{tuple(value.shape)}, the model expects {tuple(shape)}")
        if layer is None:
            out[target_path] = _put(value, shape, spec.dtype, sharding)
            filled[target_path] = {0}
            continue
        layer_sharding = NamedSharding(sharding.mesh, PartitionSpec(*sharding.spec[1:]))
        if target_path not in out:
            out[target_path] = jax.jit(
                lambda s=spec: jnp.zeros(s.shape, s.dtype), out_shardings=sharding)()
        out[target_path] = _write_layer(
            out[target_path], _put(value, shape, spec.dtype, layer_sharding), layer)
        filled.setdefault(target_path, set()).add(layer)
        del value
    missing = [p for p, s in targets.items()
               if len(filled.get(p, ())) != (s.shape[0] if _is_stacked(p) else 1)]
    if missing:
        raise UserError(f"the checkpoint gives no value for {len(missing)} parameter(s) of "
                        f"this model, e.g. {'/'.join(missing[0])}")
    return traverse_util.unflatten_dict(out)


def _is_stacked(path: ParamPath) -> bool:
    """Whether `path` is a scanned stack's param (`.../layers/block/...`)."""
    return any(a == "layers" and b == "block" for a, b in itertools.pairwise(path))


def unrolled_host_params(params: Any) -> dict:
    """Params as nested dicts of float32 numpy in the unrolled layout (`layers_0..`).

    Scanned stacks (`{"layers": {"block": [L, ...]}}`) are split into their L layers.
    """
    host = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), params)

    def unroll(tree):
        if not isinstance(tree, dict):
            return tree
        out = {}
        for key, value in tree.items():
            if key == "layers" and isinstance(value, dict) and set(value) == {"block"}:
                block = value["block"]
                count = jax.tree.leaves(block)[0].shape[0]
                for i in range(count):
                    out[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], block)
            else:
                out[key] = unroll(value)
        return out

    return unroll(host)
