"""Model size and per-device memory of a config, from shapes only (`jax.eval_shape`).

Nothing is allocated, so this answers "does gpt2_medium with fsdp=256 fit?" on a laptop.
The model is the config's task's (heads included), so it works for every family and preset.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import PartitionSpec

from transformer_jax import sharding as sharding_lib
from transformer_jax import tasks as tasks_lib
from transformer_jax.models.config import model_config_from
from transformer_jax.train import lora


def summarize(config: ml_collections.ConfigDict, num_devices: int | None = None) -> dict:
    """Parameter count, per-device parameter + optimizer bytes, mesh shape, FLOPs per token.

    Args:
      config: an experiment config (as for experiments.train).
      num_devices: devices to lay the mesh over (default: the devices present).

    Returns:
      A JSON-able dict: `params`, `trainable_params`, `param_bytes_per_device`,
      `optimizer_bytes_per_device`, `bytes_per_device`, `mesh`, `train_flops_per_token`, `preset`.
    """
    model_config = lora.with_lora(model_config_from(config.model), config)
    task = tasks_lib.make_task(config, model_config)
    model = task.build_model(model_config)
    num_devices = num_devices or jax.device_count()
    shape = sharding_lib.resolve_mesh_shape(
        config.mesh.data, config.mesh.fsdp, config.mesh.tensor, num_devices
    )
    mesh_shape = dict(zip(sharding_lib.MESH_AXES, shape, strict=False))
    optimizer, _ = lora.make_optimizer(config, config.train.steps)
    boxed = jax.eval_shape(lambda r: task.init_params(model, r), jax.random.key(0))
    param_specs = nn.logical_to_mesh(nn.get_partition_spec(boxed), sharding_lib.LOGICAL_AXIS_RULES)
    params = sharding_lib.strip_boxes(boxed)
    opt_state = jax.eval_shape(optimizer.init, params)
    opt_specs = optax.tree_map_params(
        optimizer, lora.params_like, opt_state, param_specs,
        transform_non_params=lambda _: PartitionSpec(),
        is_leaf=lambda x: isinstance(x, PartitionSpec) or lora.is_masked(x),
    )
    param_bytes = sharding_lib.per_device_bytes(params, param_specs, mesh_shape)
    opt_bytes = sharding_lib.per_device_bytes(opt_state, opt_specs, mesh_shape)
    return {
        "preset": model_config.preset,
        "params": int(sum(math.prod(p.shape) for p in jax.tree.leaves(params))),
        # What the optimizer updates: all params, or with LoRA the adapters (+ lora.trainable).
        "trainable_params": int(lora.count_trainable(params, model_config.lora)),
        "param_bytes_total": int(
            sum(math.prod(p.shape) * np.dtype(p.dtype).itemsize for p in jax.tree.leaves(params))
        ),
        "param_bytes_per_device": param_bytes,
        "optimizer_bytes_per_device": opt_bytes,
        "bytes_per_device": param_bytes + opt_bytes,
        "mesh": mesh_shape,
        "num_devices": num_devices,
        "train_flops_per_token": task.flops_per_token(),
    }
