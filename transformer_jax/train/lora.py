"""LoRA fine-tuning: the `lora` config section, frozen base weights, trainable adapters.

With `config.lora.rank > 0` the model config carries a `models/lora.py:LoraConfig`, so the
targeted dense layers grow adapters. Training then

- takes gradients only through the adapters and the `lora.trainable` parameters (the rest
  enter the loss through `stop_gradient`, so no weight-gradient matmuls are computed for
  them), and
- gives the optimizer only those parameters (`only_trainable`): Adam moments exist for
  them alone, and the frozen weights are never changed.

`config.lora.rank = 0` (the default) changes nothing: the same model, loss and optimizer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from transformer_jax import path_patterns
from transformer_jax.compress import pruning
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.lora import LoraConfig, is_adapter_path
from transformer_jax.train import optim

if TYPE_CHECKING:  # train/step.py imports train/state.py, which imports this file
    from transformer_jax.train.step import LossFn

TRAIN, FROZEN = "train", "frozen"


def lora_config(config: ml_collections.ConfigDict) -> LoraConfig | None:
    """The run's LoRA settings (None: off, also for configs without a `lora` section).

    Raises:
      UserError: a negative rank, alpha <= 0, dropout outside [0, 1), no targets.
    """
    section = config.get("lora")
    if section is None or not section.get("rank"):
        return None
    rank, alpha, dropout = section.rank, section.get("alpha", 16.0), section.get("dropout", 0.0)
    if not isinstance(rank, int) or rank < 0:
        raise UserError(f"config.lora.rank={rank!r}: use an integer >= 0 (0 = no LoRA)")
    if not alpha > 0:
        raise UserError(f"config.lora.alpha={alpha!r}: use a positive number (scale alpha/rank)")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"config.lora.dropout={dropout!r}: use a rate in [0, 1)")
    targets = path_patterns.config_patterns(section.get("targets"), "lora.targets")
    if not targets:
        raise UserError("config.lora.targets is empty: give regexes of the dense kernels to "
                        r"adapt, e.g. '(query|key|value|out)/kernel$'")
    return LoraConfig(rank=rank, alpha=float(alpha), dropout=float(dropout), targets=targets,
                      trainable=path_patterns.config_patterns(section.get("trainable"),
                                                              "lora.trainable"))


def with_lora(model_config: ModelConfig, config: ml_collections.ConfigDict) -> ModelConfig:
    """`model_config` with the run's LoRA settings (unchanged when LoRA is off)."""
    settings = lora_config(config)
    return model_config if settings is None else model_config.replace(lora=settings)


def _path_names(path) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def trainable_labels(params: Any, settings: LoraConfig) -> Any:
    """`TRAIN` for adapter params and those matching `settings.trainable`, else `FROZEN`."""

    def label(path, _):
        names = _path_names(path)
        joined = "/".join(names)
        if is_adapter_path(names) or any(re.search(p, joined) for p in settings.trainable):
            return TRAIN
        return FROZEN

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """`train/optim.py`'s optimizer (with `config.prune`'s pruning), restricted to the
    trainable params when LoRA is on."""
    optimizer, schedule = optim.make_optimizer(config.optim, total_steps,
                                               wrap=pruning.wrapper(config))
    settings = lora_config(config)
    if settings is None:
        return optimizer, schedule
    return only_trainable(optimizer, settings), schedule


def only_trainable(inner: optax.GradientTransformation, settings: LoraConfig
                   ) -> optax.GradientTransformation:
    """`inner` on the trainable params; the frozen ones are never updated and have no state.

    `inner` sees each frozen leaf as an `optax.MaskedNode` (as under `optax.masked`), so its
    state holds moments for the trainable params only. Unlike `optax.multi_transform`, the
    init passes `optax.tree_map_params`' placeholder through, so the state's shardings are
    found as for any optimizer (`params_like`).
    """

    def select(tree, labels):
        return jax.tree.map(lambda x, t: x if t == TRAIN else optax.MaskedNode(), tree, labels)

    def init(params):
        if not isinstance(params, dict):  # optax.tree_map_params' placeholder: pass it on
            return inner.init(params)
        return inner.init(select(params, trainable_labels(params, settings)))

    def update(grads, state, params=None):
        labels = trainable_labels(grads, settings)
        updates, state = inner.update(select(grads, labels), state,
                                      None if params is None else select(params, labels))
        flat, treedef = jax.tree.flatten(grads)
        chosen = jax.tree.leaves(updates, is_leaf=is_masked)
        return jax.tree.unflatten(treedef, [
            jnp.zeros_like(g) if is_masked(u) else u for g, u in zip(flat, chosen, strict=True)
        ]), state

    return optax.GradientTransformation(init, update)


def is_masked(x: Any) -> bool:
    """Whether `x` is a frozen param's place in the optimizer state (`optax.MaskedNode`)."""
    return isinstance(x, optax.MaskedNode)


def params_like(state_leaf: Any, value: Any) -> Any:
    """The `f` of `optax.tree_map_params(..., is_leaf=is_masked)` giving the optimizer state
    the params' `value` (a sharding, a spec) and frozen params' places none."""
    return state_leaf if is_masked(state_leaf) else value


def freeze_loss(loss_fn: LossFn, config: ml_collections.ConfigDict) -> LossFn:
    """`loss_fn` with the frozen params behind `stop_gradient` (unchanged when LoRA is off)."""
    settings = lora_config(config)
    if settings is None:
        return loss_fn

    def frozen_loss(params, batch, rng):
        labels = trainable_labels(params, settings)
        params = jax.tree.map(lambda p, t: p if t == TRAIN else jax.lax.stop_gradient(p),
                              params, labels)
        return loss_fn(params, batch, rng)

    return frozen_loss


def check_targets(params: Any, settings: LoraConfig | None) -> None:
    """Raises UserError when LoRA is on but no dense layer got an adapter (a typo'd regex)."""
    if settings is None:
        return
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    if not any(is_adapter_path(_path_names(path)) for path, _ in flat):
        kernels = sorted({"/".join(_path_names(p)) for p, _ in flat
                          if _path_names(p)[-1] == "kernel"})[:4]
        raise UserError(f"config.lora.targets={','.join(settings.targets)!r} match no dense "
                        f"kernel; paths look like {', '.join(kernels)}")


def count_trainable(params: Any, settings: LoraConfig | None) -> int:
    """Parameters the optimizer updates (all of them when LoRA is off)."""
    leaves = jax.tree.leaves(params)
    if settings is None:
        return sum(x.size for x in leaves)
    labels = jax.tree.leaves(trainable_labels(params, settings))
    return sum(x.size for x, t in zip(leaves, labels, strict=True) if t == TRAIN)


def check_resume(saved_model: dict, model_config: ModelConfig, directory) -> None:
    """Raises UserError when a checkpoint's adapters (rank, targets) differ from the config's.

    Args:
      saved_model: the checkpoint metadata's `model` dict.
      model_config: this run's model config.
      directory: the checkpoint directory (for the message).
    """
    saved = saved_model.get("lora") or {}
    mine = model_config.lora
    saved_key = (saved.get("rank", 0), tuple(saved.get("targets", ())),
                 tuple(saved.get("trainable", ())))
    mine_key = (0, (), ()) if mine is None else (mine.rank, mine.targets, mine.trainable)
    if saved_key[0] == mine_key[0] == 0 or saved_key == mine_key:
        return
    raise UserError(
        f"checkpoint in {directory} has lora rank={saved_key[0]} targets={saved_key[1]} "
        f"trainable={saved_key[2]} but the config says rank={mine_key[0]} "
        f"targets={mine_key[1]} trainable={mine_key[2]}: use another --workdir or the "
        "checkpoint's config.lora settings")
