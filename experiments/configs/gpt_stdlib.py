r"""A small GPT trained on the running Python's standard library source (offline default).

Runs on 2 CPU cores in under 10 minutes, with no download:

  python -m experiments.train --config=experiments/configs/gpt_stdlib.py --workdir=runs/gpt_stdlib

Arguments after ':' pick a variant:
  :test   a few-second run for tests and smoke checks (tiny model, tiny vocab).
  (none)  the quickstart default.
Any field can be overridden, e.g. `--config.model.preset=gpt2_small --config.mesh.fsdp=-1`.
"""

import dataclasses

import ml_collections
from ml_collections import config_dict

from transformer_jax.models.config import ModelConfig


def model_section(preset: str) -> ml_collections.ConfigDict:
    """`preset` plus every ModelConfig field as a typed placeholder (None = preset's value)."""
    section = ml_collections.ConfigDict({"preset": preset})
    types = {"int | None": int, "str": str, "bool": bool, "float": float, "int": int}
    for field in dataclasses.fields(ModelConfig):
        if field.name in ("preset", "deterministic", "decode"):
            continue
        section[field.name] = config_dict.placeholder(types.get(str(field.type), str))
    return section


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = ml_collections.ConfigDict({"name": "lm"})  # see transformer_jax/tasks/
    # A training workdir whose weights initialize the matching parts of this model.
    c.init_from = ""
    c.model = model_section("gpt_tiny")

    c.data = ml_collections.ConfigDict(dict(
        source="stdlib",          # stdlib | local | tfds
        path="",                  # local: file, directory, .jsonl, or comma-separated list
        tfds_name="",             # tfds: e.g. "lm1b"
        tfds_data_dir="",
        text_key="text",
        validation_fraction=0.02,
        # Virtual data shards; each process reads only its own. 0 = the checkpoint's count,
        # else one per process. Resuming on another process count needs one dividing it.
        num_shards=0,
        seq_len=256,
        tokenizer_cache_dir="",   # default: $TRANSFORMER_JAX_CACHE or ~/.cache/transformer_jax
    ))

    c.train = ml_collections.ConfigDict(dict(
        steps=300,
        batch_size=16,
        grad_accum_steps=1,
        seed=0,
        # Optimizer steps per jitted call (Keras's steps_per_execution). Eval and checkpoint
        # intervals that are multiples of it keep every call this long. On CPU, 4 makes each
        # step ~1.2-1.3x faster than 1 (XLA's temp buffer is allocated once per call).
        steps_per_call=4,
        log_every=10,
        eval_every=100,
        eval_batches=16,
        checkpoint_every=100,
        max_to_keep=3,
        on_nonfinite="stop",      # non-finite loss/grads: "stop" or "skip" the update
    ))

    c.optim = ml_collections.ConfigDict(dict(
        optimizer="adamw",
        learning_rate=2e-3,
        schedule="cosine",        # cosine | linear | inverse_sqrt | constant
        warmup_steps=30,
        end_lr_ratio=0.1,
        b1=0.9,
        b2=0.95,
        eps=1e-8,
        weight_decay=0.1,
        grad_clip_norm=1.0,
    ))

    # -1 = the remaining devices. On one CPU this is a (1, 1, 1) mesh.
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    c.sample = ml_collections.ConfigDict(dict(
        prompt="def ", max_new_tokens=128, temperature=0.8, top_k=40, top_p=0.95, seed=0,
    ))

    if arg == "test":
        c.model.vocab_size = 512
        c.model.num_layers = 2
        c.model.d_model = 32
        c.model.num_heads = 2
        c.model.mlp_dim = 64
        c.model.max_len = 32
        c.data.seq_len = 32
        c.train.update(steps=6, batch_size=8, steps_per_call=3, log_every=1, eval_every=3,
                       eval_batches=2, checkpoint_every=3)
        c.optim.warmup_steps = 2
        c.sample.max_new_tokens = 8
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; use ':test' or nothing")
    return c
