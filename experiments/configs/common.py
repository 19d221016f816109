r"""The sections every experiment config shares (big_vision style).

A config file's `get_config(arg)` builds its `task` and `data` sections itself and takes the
`model`, `train`, `optim` and `mesh` sections from here, then `apply_test_variant` for ':test'.
`check_argument` rejects arguments a config does not know, so a typo after ':' fails instead
of silently running the default.
"""

import dataclasses
import types
import typing
from collections.abc import Sequence

import ml_collections
from ml_collections import config_dict

from transformer_jax.models.config import ModelConfig

# ModelConfig fields that are not settings of an experiment: `preset` is the section's own
# key, and eval/decode variants are derived with `ModelConfig.replace`.
_NOT_CONFIGURABLE = ("preset", "deterministic", "decode", "lora")


def _value_type(hint: typing.Any) -> type:
    """The type a field's values have: X for `X | None`, str for `Literal["a", "b"]`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        (hint,) = {type(arg) for arg in typing.get_args(hint)}
    if not isinstance(hint, type):
        raise TypeError(f"ModelConfig field annotation {hint!r} is not a plain type")
    return hint


def model_section(preset: str) -> ml_collections.ConfigDict:
    """`preset` plus every configurable `ModelConfig` field as a typed placeholder.

    A placeholder left None keeps the preset's value (`model_config_from`); its type lets
    `--config.model.FIELD=VALUE` parse the flag.

    Args:
      preset: a key of `transformer_jax.models.config.PRESETS`.
    """
    hints = typing.get_type_hints(ModelConfig)
    section = ml_collections.ConfigDict({"preset": preset})
    for field in dataclasses.fields(ModelConfig):
        if field.name not in _NOT_CONFIGURABLE:
            section[field.name] = config_dict.placeholder(_value_type(hints[field.name]))
    return section


def train_section(*, steps: int, batch_size: int, log_every: int = 10, eval_every: int = 100,
                  eval_batches: int | None = 16) -> ml_collections.ConfigDict:
    """The trainer's settings (transformer_jax/run/trainer.py); checkpoints at each eval.

    Args:
      steps: optimizer steps of the run.
      batch_size: global batch size (examples per optimizer step).
      log_every: steps between training-metric logs.
      eval_every: steps between evaluations, and between checkpoints.
      eval_batches: batches per evaluation (None: the whole validation split).
    """
    return ml_collections.ConfigDict(dict(
        steps=steps,
        batch_size=batch_size,
        grad_accum_steps=1,
        seed=0,
        # Optimizer steps per jitted call (Keras's steps_per_execution). Eval and checkpoint
        # intervals that are multiples of it keep every call this long. On CPU, 4 makes each
        # step ~1.2-1.3x faster than 1 (XLA's temp buffer is allocated once per call).
        steps_per_call=4,
        log_every=log_every,
        eval_every=eval_every,
        eval_batches=eval_batches,
        checkpoint_every=eval_every,
        max_to_keep=3,
        on_nonfinite="stop",      # non-finite loss/grads: "stop" or "skip" the update
        profile_steps="",         # "START,END": a jax.profiler trace into WORKDIR/profile
    ))


def optim_section(*, learning_rate: float, schedule: str, warmup_steps: int,
                  end_lr_ratio: float, b2: float, eps: float, weight_decay: float,
                  grad_clip_norm: float) -> ml_collections.ConfigDict:
    """AdamW (b1 = 0.9) and its schedule (transformer_jax/train/optim.py).

    Args:
      learning_rate: the peak learning rate.
      schedule: cosine | linear | inverse_sqrt | constant.
      warmup_steps: linear warmup steps to the peak.
      end_lr_ratio: the final learning rate as a fraction of the peak.
      b2: Adam's second-moment decay.
      eps: Adam's epsilon.
      weight_decay: decoupled weight decay.
      grad_clip_norm: global gradient-norm clip (0: none).
    """
    return ml_collections.ConfigDict(dict(
        optimizer="adamw", learning_rate=learning_rate, schedule=schedule,
        warmup_steps=warmup_steps, end_lr_ratio=end_lr_ratio, b1=0.9, b2=b2, eps=eps,
        weight_decay=weight_decay, grad_clip_norm=grad_clip_norm,
    ))


def mesh_section() -> ml_collections.ConfigDict:
    """Data parallelism over every device: -1 = the remaining devices, (1, 1, 1) on one CPU."""
    return ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))


def lora_section() -> ml_collections.ConfigDict:
    """LoRA fine-tuning (transformer_jax/train/lora.py); rank 0 = off (train every weight).

    `targets` and `trainable` are comma-separated regexes searched in parameter paths:
    adapted dense kernels (default: attention query/key/value/out), and other parameters
    trained in full (default: the fine-tuning heads, which start fresh).
    """
    return ml_collections.ConfigDict(dict(
        rank=0, alpha=16.0, dropout=0.0,
        targets=r"(query|key|value|out)/kernel$",
        trainable=r"^(classifier|tagger|span)/",
    ))


def prune_section() -> ml_collections.ConfigDict:
    """Gradual magnitude pruning (transformer_jax/compress/pruning.py); sparsity 0 = off.

    Masks are recomputed every `frequency` steps from `begin_step` to `end_step` (equal: one
    shot), the sparsity rising cubically from `initial_sparsity` to `sparsity`; `structure`
    'unstructured' or 'N:M' (e.g. '2:4', sparsity 0.5); `targets` are comma-separated regexes
    searched in parameter paths (default: the attention and MLP projection kernels).
    """
    return ml_collections.ConfigDict(dict(
        sparsity=0.0, initial_sparsity=0.0, begin_step=0, end_step=0, frequency=10,
        structure="unstructured",
        targets=r"(query|key|value|out|wi|wo|wi_gate|wi_up)/kernel$",
    ))


def check_argument(arg: str | None, variants: Sequence[str] = ("test",)) -> None:
    """Raises ValueError unless `arg` (the text after ':') is empty or one of `variants`.

    Args:
      arg: the config argument (None or "" for the default).
      variants: the arguments the config accepts.
    """
    if not arg or arg in variants:
        return
    if variants:
        choices = ", ".join(f"':{v}'" for v in variants)
        raise ValueError(f"unknown config argument {arg!r}; use {choices} or nothing")
    raise ValueError(f"unknown config argument {arg!r}; this config has no variants")


def apply_test_variant(c: ml_collections.ConfigDict, *, steps_per_call: int,
                       **model) -> None:
    """Turns `c` into its ':test' variant: a tiny model trained for a few steps (about half
    a minute with compilation).

    The run is two jitted calls of `steps_per_call` steps with an evaluation and a checkpoint
    after each, so tests exercise resuming and evaluating at call boundaries.

    Args:
      c: the config, changed in place.
      steps_per_call: optimizer steps per jitted call.
      **model: model-section values besides the shared tiny width (e.g. `vocab_size`,
        `num_layers`, `max_len`).
    """
    c.model.update(d_model=32, num_heads=2, mlp_dim=64, **model)
    c.train.update(steps=2 * steps_per_call, batch_size=8, steps_per_call=steps_per_call,
                   log_every=1, eval_every=steps_per_call, eval_batches=2,
                   checkpoint_every=steps_per_call)
    c.optim.warmup_steps = 2
