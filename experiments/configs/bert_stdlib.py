r"""BERT pretraining (MLM + NSP) on the running Python's standard library (offline default).

Segments are blocks of consecutive non-blank source lines of one file; validation reports
MLM accuracy, NSP accuracy and MLM loss. A few minutes on 2 CPU cores:

  python -m experiments.train --config=experiments/configs/bert_stdlib.py \
      --workdir=runs/bert_stdlib

TFDS text works through the same path, e.g. `--config.data.source=tfds
--config.data.tfds_name=wikipedia/20230601.en --config.data.tfds_data_dir=DIR`.

Arguments after ':' pick a variant:
  :test   a few-second run for tests and smoke checks (tiny model, tiny vocab).
  (none)  the CPU default (bert_tiny, 4096-piece vocab).

This module also holds the sections every BERT config shares (`bert_config`).
"""

import ml_collections

from experiments.configs.common import model_section


def bert_config(task: str, arg: str | None, **data) -> ml_collections.ConfigDict:
    """The sections of a BERT experiment; `data` overrides the data section's defaults.

    Args:
      task: `task.name` (bert_pretrain | classify | tagging | qa).
      arg: the config argument ("test" or None).
      **data: data-section values of this experiment.
    """
    c = ml_collections.ConfigDict()
    c.task = ml_collections.ConfigDict(dict(name=task, max_answer_tokens=30))
    # A pretraining workdir or checkpoint whose `bert` encoder initializes this model.
    c.init_from = ""
    c.model = model_section("bert_tiny")
    c.model.vocab_size = 4096
    c.model.max_len = 128
    c.data = ml_collections.ConfigDict(dict(
        source="stdlib",          # stdlib | local | tfds
        path="",                  # local: the training file (or directory)
        validation_path="",       # local: the evaluation file (default: hash split of path)
        tfds_name="",
        tfds_data_dir="",
        text_key="text",          # classification columns (CSV/TSV header or JSONL keys)
        text_b_key="",            # set for sentence pairs
        label_key="label",
        validation_fraction=0.02,
        seq_len=128,
        segment_lines=4,          # pretraining/tagging: source lines per segment
        doc_stride=64,            # QA: tokens between the starts of context windows
        tokenizer_cache_dir="",
    ))
    c.data.update(data)
    c.train = ml_collections.ConfigDict(dict(
        steps=300, batch_size=32, grad_accum_steps=1, seed=0, steps_per_call=4, log_every=10,
        eval_every=100,
        eval_batches=16, checkpoint_every=100, max_to_keep=3, on_nonfinite="stop",
    ))
    c.optim = ml_collections.ConfigDict(dict(
        optimizer="adamw", learning_rate=1e-3, schedule="linear", warmup_steps=30,
        end_lr_ratio=0.0, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01, grad_clip_norm=1.0,
    ))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    if arg == "test":
        c.model.update(vocab_size=384, num_layers=2, d_model=32, num_heads=2, mlp_dim=64,
                       max_len=64)
        c.data.seq_len = 64
        c.train.update(steps=6, batch_size=8, steps_per_call=3, log_every=1, eval_every=3,
                       eval_batches=2, checkpoint_every=3)
        c.optim.warmup_steps = 2
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; use ':test' or nothing")
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = bert_config("bert_pretrain", arg)
    c.train.steps = 300 if not arg else c.train.steps
    return c
