"""Module-level pure training steps: `train_step`, and `train_steps` (K of them in one call).

Task-agnostic: the loss comes from the task (`tasks/`). Jit them where they are called, with
shardings and `donate_argnums=0` (as `run/trainer.py` does):

    step = jax.jit(functools.partial(train_step, loss_fn=..., optimizer=..., schedule=...),
                   in_shardings=(state_sh, batch_sh, None), out_shardings=(state_sh, None),
                   donate_argnums=0)

A batch is a dict of arrays whose leading axis is the batch B; its keys are the task's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from transformer_jax.train.state import TrainState

# A batch: arrays keyed by name, leading axis B (numpy on the host, jax.Array on device).
Batch = dict[str, Any]
# (params, batch, dropout_rng) -> (loss_sum, weight_sum); the step divides the sums. A step
# given `frozen` params calls it as loss_fn(params, batch, dropout_rng, frozen=frozen).
LossFn = Callable[[Any, Batch, jax.Array], tuple[jax.Array, jax.Array]]
# batch -> its non-padding token count, a scalar (the task's `real_tokens`).
TokenCount = Callable[[Batch], jax.Array]


def train_step(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    frozen: Any = None,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    grad_accum_steps: int = 1,
    real_tokens: TokenCount | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on a global batch, accumulating gradients over micro-batches.

    Args:
      state: the train state (donated).
      batch: [B, ...] arrays; B must divide by `grad_accum_steps`.
      rng: base PRNG key; dropout uses `fold_in(rng, step)` so runs are reproducible and
        resumable.
      loss_fn: (params, batch, rng) -> (loss_sum, weight_sum).
      optimizer: the Optax transformation.
      schedule: the learning-rate schedule (for the metrics).
      grad_accum_steps: micro-batches per step; the mean is over all tokens of the batch,
        exactly as without accumulation.
      real_tokens: counts the batch's non-padding tokens, the `tokens` metric that tokens/s
        and MFU are computed from; None counts the loss weight sum instead (the non-padding
        target tokens of an LM, but examples for a classifier).
      frozen: params the loss reads but never trains (a distillation teacher's,
        `Task.frozen_params`), passed to `loss_fn` as `frozen=`: a jit argument, so they are
        never compiled in as constants; no gradient is taken for them. None: `loss_fn` takes
        none (every other task).

    Returns:
      The new state and scalar metrics: loss, grad_norm, nonfinite, learning_rate, tokens.
    """
    step_rng = jax.random.fold_in(rng, state.step)
    if frozen is not None:
        loss_fn = functools.partial(loss_fn, frozen=frozen)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def micro_step(carry, xs):
        grads_acc, loss_acc, weight_acc = carry
        micro_batch, index = xs
        (loss_sum, weight_sum), grads = grad_fn(
            state.params, micro_batch, jax.random.fold_in(step_rng, index)
        )
        grads_acc = jax.tree.map(jnp.add, grads_acc, grads)
        return (grads_acc, loss_acc + loss_sum, weight_acc + weight_sum), None

    micro_batches = jax.tree.map(
        lambda x: x.reshape(grad_accum_steps, x.shape[0] // grad_accum_steps, *x.shape[1:]),
        batch,
    )
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grads, loss_sum, weight_sum), _ = jax.lax.scan(
        micro_step,
        (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)),
        (micro_batches, jnp.arange(grad_accum_steps)),
    )
    denominator = jnp.maximum(weight_sum, 1.0)
    grads = jax.tree.map(lambda g: g / denominator, grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    metrics = {
        "loss": loss_sum / denominator,
        "grad_norm": grad_norm,
        # 1 when this step's update was skipped (optax.apply_if_finite in optim.py).
        "nonfinite": (~jnp.isfinite(grad_norm) | ~jnp.isfinite(loss_sum)).astype(jnp.float32),
        "learning_rate": schedule(state.step),
        "tokens": weight_sum if real_tokens is None else real_tokens(batch).astype(jnp.float32),
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def train_steps(
    state: TrainState, batches: Batch, rng: jax.Array, frozen: Any = None, **step_kwargs
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`train_step` on each of K batches in turn, inside one call (`lax.scan` over steps).

    Keras's `steps_per_execution`: one dispatch and one set of XLA temp buffers per K steps.
    On CPU that matters: XLA allocates each call's temp buffer (~1 GB for the benchmark's
    reference GPT) afresh and the kernel zero-fills its pages, so one step per call spends
    ~0.3-0.5 s of a 1-1.5 s step in page faults (benchmarks/README.md). Each step is exactly
    `train_step` (same dropout keys, same update): K steps here match K calls of it up to
    float rounding (tests/train/test_step.py).

    Args:
      state: the train state (donated).
      batches: [K, B, ...] arrays, batch k for step k.
      rng: base PRNG key, as for `train_step`.
      frozen: params every step's loss reads but never trains, as for `train_step`.
      **step_kwargs: `train_step`'s keyword arguments (loss_fn, optimizer, schedule, ...).

    Returns:
      The state after K steps and each step's metrics stacked: {name: [K]}.
    """
    return jax.lax.scan(lambda s, batch: train_step(s, batch, rng, frozen, **step_kwargs),
                        state, batches)
