"""Optax optimizer and learning-rate schedules from an `optim` config section.

Config fields (see experiments/configs): `optimizer` ("adamw"), `learning_rate` (peak),
`schedule` ("cosine", "linear", "inverse_sqrt", "constant"), `warmup_steps`, `end_lr_ratio`,
`b1`, `b2`, `eps`, `weight_decay`, `grad_clip_norm` (0 disables).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.traverse_util as traverse_util
import jax.numpy as jnp
import ml_collections
import optax

from transformer_jax.errors import UserError


def make_schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup to `learning_rate`, then the configured decay.

    - cosine: cosine decay to `learning_rate * end_lr_ratio` at `total_steps`.
    - linear: linear decay to `learning_rate * end_lr_ratio` at `total_steps`.
    - inverse_sqrt: lr * sqrt(warmup / step) after warmup. With lr = (d_model * warmup)^-0.5
      this is exactly "Attention Is All You Need" eq. 3, d^-0.5 * min(step^-0.5,
      step * warmup^-1.5) (tests/tasks/test_seq2seq.py); here the peak is given directly.
    - constant: flat after warmup.
    """
    peak, warmup = optim.learning_rate, optim.warmup_steps
    end = peak * optim.get("end_lr_ratio", 0.0)
    decay_steps = max(total_steps - warmup, 1)
    warm = optax.linear_schedule(0.0, peak, max(warmup, 1))
    if optim.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=end / peak if peak else 0.0)
    elif optim.schedule == "linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    elif optim.schedule == "inverse_sqrt":
        def decay(step):
            # join_schedules also evaluates this before warmup (step < 0): keep it finite.
            return peak * jnp.sqrt(max(warmup, 1) / jnp.maximum(step + max(warmup, 1), 1))
    elif optim.schedule == "constant":
        decay = optax.constant_schedule(peak)
    else:
        raise UserError(
            f"optim.schedule={optim.schedule!r} is unknown; use cosine, linear, "
            "inverse_sqrt or constant"
        )
    return optax.join_schedules([warm, decay], [warmup])


def decay_mask(params) -> dict:
    """True for the leaves weight decay applies to: projection kernels only.

    Norm scales/biases, projection biases and embedding tables are not decayed (the usual
    GPT/BERT practice).
    """
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: path[-1] == "kernel" for path in flat})


def make_optimizer(
    optim: ml_collections.ConfigDict, total_steps: int,
    wrap: Callable[[optax.GradientTransformation], optax.GradientTransformation] | None = None,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer (clipping, decay mask, non-finite guard) and its schedule (for logging).

    `wrap` (e.g. `compress/pruning.py:wrapper`) wraps clip + AdamW inside the non-finite
    guard, so a skipped step leaves its state unchanged too.
    """
    schedule = make_schedule(optim, total_steps)
    if optim.optimizer != "adamw":
        raise UserError(f"optim.optimizer={optim.optimizer!r} is unknown; use adamw")
    chain = []
    if optim.grad_clip_norm:
        chain.append(optax.clip_by_global_norm(optim.grad_clip_norm))
    chain.append(
        optax.adamw(
            schedule,
            b1=optim.b1,
            b2=optim.b2,
            eps=optim.eps,
            weight_decay=optim.weight_decay,
            mask=decay_mask,
        )
    )
    # A step whose gradients are not finite changes nothing (params, moments, counts);
    # train_step reports it and the loop skips or stops per train.on_nonfinite.
    inner = optax.chain(*chain) if wrap is None else wrap(optax.chain(*chain))
    return optax.apply_if_finite(inner, max_consecutive_errors=2**30), schedule
