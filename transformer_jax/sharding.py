"""The device mesh and the one table mapping logical axis names to mesh axes.

Mesh axes: `data` (pure data parallelism: params replicated), `fsdp` (data parallelism with
params and optimizer state sharded, ZeRO-3 style), `tensor` (Megatron-style model
parallelism over heads / MLP / vocab). Model code only names logical axes (see
models/layers.py); `LOGICAL_AXIS_RULES` is the one table every sharding here is derived from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from transformer_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

LOGICAL_AXIS_RULES: Rules = (
    # Activations: the batch is split over every data-parallel axis.
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    # Parameters: FSDP shards the embed dim, tensor parallelism the per-layer wide dims.
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("layers", None),
    # Input batches.
    ("batch", ("data", "fsdp")),
    ("length", None),
)


def resolve_mesh_shape(
    data: int, fsdp: int, tensor: int, num_devices: int
) -> tuple[int, int, int]:
    """Fills in one -1 entry with the remaining devices and checks the product.

    Args:
      data, fsdp, tensor: requested sizes; at most one may be -1.
      num_devices: devices available (all processes).

    Returns:
      (data, fsdp, tensor) with product == num_devices.
    """
    shape = [data, fsdp, tensor]
    if shape.count(-1) > 1:
        raise UserError(f"mesh {tuple(shape)}: at most one of mesh.data/fsdp/tensor may be -1")
    if any(s == 0 or s < -1 for s in shape):
        raise UserError(f"mesh {tuple(shape)}: sizes must be positive (or -1 for the rest)")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise UserError(
                f"mesh {tuple(shape)} does not divide the {num_devices} devices: "
                "choose sizes whose product divides the device count"
            )
        shape[shape.index(-1)] = num_devices // known
    if math.prod(shape) != num_devices:
        raise UserError(
            f"mesh {tuple(shape)} uses {math.prod(shape)} devices but {num_devices} are "
            "available: make mesh.data*mesh.fsdp*mesh.tensor equal the device count "
            "(or set one of them to -1)"
        )
    return tuple(shape)


def make_mesh(
    data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all devices of all processes).

    `jax.make_mesh` orders devices so that the innermost axes (tensor) stay within a host /
    on fast links.
    """
    devices = list(devices) if devices is not None else jax.devices()
    shape = resolve_mesh_shape(data, fsdp, tensor, len(devices))
    return jax.make_mesh(
        shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices
    )


def logical_sharding(
    mesh: Mesh, logical_axes: tuple[str | None, ...]
) -> NamedSharding:
    """The NamedSharding of an array with the given logical axes."""
    return NamedSharding(mesh, nn.logical_to_mesh_axes(logical_axes, LOGICAL_AXIS_RULES))


def strip_boxes(tree):
    """The values of a tree of `nn.LogicallyPartitioned` boxes, without sharding constraints
    (`nn.unbox` would apply them, which fails on abstract values outside `jit`)."""
    return jax.tree.map(
        lambda x: x.unbox(apply_constraint=False) if isinstance(x, nn.Partitioned) else x,
        tree,
        is_leaf=lambda x: isinstance(x, nn.Partitioned),
    )


def tree_shardings(abstract_tree, mesh: Mesh):
    """NamedShardings for a tree of (possibly `nn.LogicallyPartitioned`) abstract arrays.

    Leaves without logical annotations (step counters, optimizer scalars) are replicated.
    """
    specs = nn.get_partition_spec(abstract_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch's arrays ([B], [B, T], ...): B over the data-parallel axes.

    Only the leading axis is named, so the one sharding fits arrays of any rank (per-example
    labels [B] as well as tokens [B, T]); the other axes are replicated.
    """
    return logical_sharding(mesh, ("batch",))


def steps_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of K stacked batches [K, B, ...] (`train_steps`): B as in `batch_sharding`."""
    return logical_sharding(mesh, (None, "batch"))


def data_parallel_size(mesh: Mesh) -> int:
    """How many ways the batch dimension is split."""
    spec = batch_sharding(mesh).spec[0]
    axes = (spec,) if isinstance(spec, str) else (spec or ())
    return math.prod(mesh.shape[a] for a in axes)


def per_device_bytes(abstract_tree, specs, mesh_shape: dict[str, int]) -> int:
    """Bytes one device holds for `abstract_tree` laid out by PartitionSpecs `specs`.

    Computed from shapes only (works on `jax.eval_shape` output, for any mesh size, without
    the devices); uneven splits are rounded up as XLA pads them.

    Args:
      abstract_tree: pytree of arrays or ShapeDtypeStructs.
      specs: matching pytree of PartitionSpecs (or NamedShardings).
      mesh_shape: mesh axis name -> size.
    """
    total = 0
    leaves = jax.tree.leaves(abstract_tree)
    spec_leaves = jax.tree.leaves(
        specs, is_leaf=lambda x: isinstance(x, (PartitionSpec, NamedSharding))
    )
    for leaf, spec in zip(leaves, spec_leaves, strict=True):
        spec = spec.spec if isinstance(spec, NamedSharding) else spec
        total += math.prod(_shard_shape(leaf.shape, spec, mesh_shape)) * np.dtype(
            leaf.dtype
        ).itemsize
    return total


def _shard_shape(
    shape: tuple[int, ...], spec: PartitionSpec, mesh_shape: dict[str, int]
) -> tuple[int, ...]:
    spec = tuple(spec) + (None,) * (len(shape) - len(spec))
    out = []
    for dim, axes in zip(shape, spec, strict=False):
        axes = (axes,) if isinstance(axes, str) else (axes or ())
        ways = math.prod(mesh_shape[a] for a in axes)
        out.append(-(-dim // ways))
    return tuple(out)
