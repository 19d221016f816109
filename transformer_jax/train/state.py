"""The train state and its sharded initialization (never allocating unsharded weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformer_jax import sharding as sharding_lib
from transformer_jax.train import lora


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training: a pytree, so it is checkpointed as one.

    Attributes:
      step: scalar int32, optimizer steps taken.
      params: the model parameters (float32 by default).
      opt_state: the Optax state.
    """

    step: jax.Array
    params: Any
    opt_state: Any


def state_shardings(
    init_params: Callable[[jax.Array], Any],
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
) -> tuple[TrainState, TrainState]:
    """Abstract train state and its NamedShardings, from shapes only (`jax.eval_shape`).

    Args:
      init_params: rng -> boxed (logically partitioned) params, e.g.
        `lambda rng: model.init(rng, tokens)["params"]`.
      optimizer: the Optax transformation.
      mesh: the device mesh.

    Returns:
      (abstract_state, shardings): two TrainState pytrees of ShapeDtypeStruct / NamedSharding.
      Optimizer moments are sharded like their params; scalars are replicated.
    """
    rng = jax.random.key(0)
    boxed = jax.eval_shape(init_params, rng)
    param_shardings = sharding_lib.tree_shardings(boxed, mesh)
    params = sharding_lib.strip_boxes(boxed)
    opt_state = jax.eval_shape(optimizer.init, params)
    replicated = NamedSharding(mesh, PartitionSpec())
    opt_shardings = optax.tree_map_params(
        optimizer,
        lora.params_like,  # frozen LoRA base weights have no state (train/lora.py)
        opt_state,
        param_shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lora.is_masked,
    )
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32), params=params, opt_state=opt_state
    )
    shardings = TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings)
    return abstract, shardings


def init_state(
    init_params: Callable[[jax.Array], Any],
    optimizer: optax.GradientTransformation,
    rng: jax.Array,
    shardings: TrainState,
) -> TrainState:
    """A fresh train state, created directly in its shards by a jitted init."""

    def _init(rng):
        params = nn.unbox(init_params(rng))
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params)
        )

    return jax.jit(_init, out_shardings=shardings)(rng)


def create_sharded_state(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rng: jax.Array,
    seq_len: int,
) -> tuple[TrainState, TrainState]:
    """A fresh train state for `model`, initialized directly in its shards on `mesh`.

    The one-call version of `state_shardings` + `init_state`, for notebooks.

    Returns:
      (state, shardings).
    """
    dummy = jnp.zeros((1, seq_len), jnp.int32)

    def init_params(key):
        return model.init(key, dummy)["params"]

    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        _, shardings = state_shardings(init_params, optimizer, mesh)
        state = init_state(init_params, optimizer, rng, shardings)
    return state, shardings
