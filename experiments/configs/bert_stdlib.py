r"""BERT pretraining (MLM + NSP) on the running Python's standard library (offline default).

Segments are blocks of consecutive non-blank source lines of one file; validation reports
MLM accuracy, NSP accuracy and MLM loss. A few minutes on 2 CPU cores:

  python -m experiments.train --config=experiments/configs/bert_stdlib.py \
      --workdir=runs/bert_stdlib

TFDS text works through the same path, e.g. `--config.data.source=tfds
--config.data.tfds_name=wikipedia/20230601.en --config.data.tfds_data_dir=DIR`.

Arguments after ':' pick a variant:
  :test   a smoke run for tests (tiny model, tiny vocab): about half a minute on 2 cores,
          mostly compilation and, on first use, training its tokenizer.
  (none)  the CPU default: the bert_tiny preset (4096-piece vocab, 128 positions).
The model section pins no sizes, so `--config.model.preset=bert_base` is BERT-base exactly.

This module also holds what every BERT config shares: `bert_config` builds the sections of
any BERT task, `tfds_config` those of a fine-tuning run on a TFDS dataset.
"""

import ml_collections

from experiments.configs import common

# The data keys only some BERT tasks read, with their defaults, so that each task's config
# has exactly the keys its data code reads (transformer_jax/data/: sources.make_source for
# pretraining, classify.py, tagging.py, qa.py).
_TASK_DATA = {
    "bert_pretrain": dict(
        validation_fraction=0.02,
        text_key="text",          # local JSONL key / TFDS feature holding the text
        segment_lines=4,          # non-blank source lines per segment
    ),
    "classify": dict(
        validation_path="",       # local: the evaluation file (default: hash split of path)
        validation_fraction=0.02,
        text_key="text",          # CSV/TSV column or JSONL key of the text
        text_b_key="",            # ... of the second text of sentence pairs
        label_key="label",
    ),
    "tagging": dict(
        validation_path="",       # local: the evaluation CoNLL file
        validation_fraction=0.02,
        segment_lines=4,          # stdlib: source lines per tagged sentence
    ),
    "qa": dict(
        validation_path="",       # local: the evaluation SQuAD JSON file
        doc_stride=64,            # tokens between the starts of a context's windows
    ),
}
# The task-section keys beyond `name` (transformer_jax/tasks/).
_TASK_SETTINGS = {
    "qa": dict(max_answer_tokens=30),  # the longest predicted answer span
}


def bert_config(task: str, arg: str | None, **data) -> ml_collections.ConfigDict:
    """The sections of a BERT experiment; `data` overrides the data section's defaults.

    Args:
      task: `task.name` (bert_pretrain | classify | tagging | qa).
      arg: the config argument ("test" or None).
      **data: data-section values of this experiment (keys the task reads).
    """
    if task not in _TASK_DATA:
        raise ValueError(f"unknown BERT task {task!r}; use one of {sorted(_TASK_DATA)}")
    common.check_argument(arg)
    c = ml_collections.ConfigDict()
    c.task = ml_collections.ConfigDict(dict(name=task, **_TASK_SETTINGS.get(task, {})))
    # A pretraining workdir or checkpoint whose `bert` encoder initializes this model.
    c.init_from = ""
    c.model = common.model_section("bert_tiny")
    c.data = ml_collections.ConfigDict(dict(
        source="stdlib",          # stdlib | local | tfds
        path="",                  # local: the training file (or directory)
        tfds_name="",
        tfds_data_dir="",
        seq_len=128,
        tokenizer_cache_dir="",
        **_TASK_DATA[task],
    ))
    unknown = sorted(set(data) - set(c.data))
    if unknown:
        raise ValueError(f"task {task!r} reads no data keys {unknown}")
    c.data.update(data)
    c.train = common.train_section(steps=300, batch_size=32)
    c.optim = common.optim_section(
        learning_rate=1e-3, schedule="linear", warmup_steps=30, end_lr_ratio=0.0, b2=0.999,
        eps=1e-6, weight_decay=0.01, grad_clip_norm=1.0,
    )
    c.mesh = common.mesh_section()
    c.lora = common.lora_section()
    c.prune = common.prune_section()
    if arg == "test":
        common.apply_test_variant(c, steps_per_call=3, vocab_size=384, num_layers=2,
                                  max_len=64)
        c.data.seq_len = 64
    return c


def tfds_config(task: str, tfds_name: str, arg: str | None, steps: int = 3000
                ) -> ml_collections.ConfigDict:
    """Fine-tuning `task` on a TFDS dataset prepared in `data.tfds_data_dir`.

    Args:
      task: `task.name` (classify | tagging | qa).
      tfds_name: the TFDS dataset, e.g. "glue/sst2".
      arg: the config argument ("test" or None).
      steps: training steps.
    """
    c = bert_config(task, arg, source="tfds", tfds_name=tfds_name)
    # The tokenizer is trained on the dataset's own text (EncoderTask.tokenizer_source).
    c.model.vocab_size = 8192
    # Evaluate on the whole validation split: these are the reported numbers.
    c.train.update(steps=steps, eval_batches=None)
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """MLM + NSP pretraining on the stdlib; `arg` is None or "test"."""
    return bert_config("bert_pretrain", arg)
