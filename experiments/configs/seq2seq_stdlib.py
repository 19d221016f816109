r"""Code summarization on the running Python's standard library (offline seq2seq default).

A function's source with its docstring removed -> the first sentence of the docstring,
split by a hash of the file path; a small encoder-decoder (transformer_tiny, 4096-piece
vocab), trained as in "Attention Is All You Need" (label smoothing 0.1, Adam(0.9, 0.98,
1e-9), inverse-square-root schedule), evaluated with beam search, sacrebleu BLEU and ROUGE:

  python -m experiments.train --config=experiments/configs/seq2seq_stdlib.py \
      --workdir=runs/seq2seq_stdlib

Arguments after ':' pick a variant:
  :test   a smoke run for tests (tiny model, tiny vocab): about half a minute on 2 cores,
          mostly compilation and, on first use, training its tokenizer.
  (none)  the default: a few minutes on 2 CPU cores.

This module also holds the sections every seq2seq config shares (`seq2seq_config`).
"""

import ml_collections
from ml_collections import config_dict

from experiments.configs import common


def seq2seq_config(preset: str) -> ml_collections.ConfigDict:
    """The sections every seq2seq config shares (wmt14_ende.py etc. change a few fields).

    Args:
      preset: the encoder-decoder preset (transformer_tiny | transformer_base | ...).
    """
    c = ml_collections.ConfigDict()
    c.model = common.model_section(preset)
    c.task = ml_collections.ConfigDict(dict(
        name="seq2seq",
        label_smoothing=0.1,
        eval_decode_examples=128,  # validation examples beam-decoded at each evaluation
        demo_examples=4,
        beam_size=4,               # 0 = greedy
        alpha=0.6,                 # GNMT length penalty
        repetition_penalty=1.0,    # beam search: emitted tokens' log-probs x this (1 = off)
        no_repeat_ngram=0,         # beam search: no n-gram twice (0 = off)
        len_a=0.0,                 # output limit a * source length + b (b = 0: max_target_len)
        len_b=0,
    ))
    source_len, target_len = config_dict.FieldReference(128), config_dict.FieldReference(32)
    c.data = ml_collections.ConfigDict(dict(
        source="code",             # code | tsv | files | tfds
        path="",                   # code: .py file or directory (default: the stdlib); tsv
        source_path="",            # files: line-aligned source and target files
        target_path="",
        tfds_name="",              # tfds: wmt14_translate/de-en, cnn_dailymail, xsum, ...
        tfds_data_dir="",
        source_key="",             # tfds feature names ("" = the known default)
        target_key="",
        validation_fraction=0.05,
        max_source_len=source_len,
        max_target_len=target_len,
        seq_len=source_len + target_len,  # tokens per example (throughput figures); derived
        long_examples="truncate",  # truncate | drop
        # examples: train.batch_size rows per step; tokens: length buckets of at most
        # tokens_per_batch padded tokens a side (transformer_jax/data/token_batching.py).
        batching="examples",
        tokens_per_batch=0,
        tokenizer_cache_dir="",
    ))
    c.train = common.train_section(steps=1200, batch_size=32, log_every=50, eval_every=400,
                                   eval_batches=8)
    # The paper: lr = d^-0.5 * min(step^-0.5, step * warmup^-1.5), i.e. a peak of
    # (d * warmup)^-0.5 at `warmup` then ~ 1/sqrt(step); here the peak is given directly.
    c.optim = common.optim_section(
        learning_rate=1e-3, schedule="inverse_sqrt", warmup_steps=200, end_lr_ratio=0.0,
        b2=0.98, eps=1e-9, weight_decay=0.0, grad_clip_norm=0.0,
    )
    c.mesh = common.mesh_section()
    c.lora = common.lora_section()
    c.prune = common.prune_section()
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Code summarization with transformer_tiny; `arg` is None or "test"."""
    common.check_argument(arg)
    c = seq2seq_config("transformer_tiny")
    c.model.dropout_rate = 0.1
    if arg == "test":
        common.apply_test_variant(c, steps_per_call=2, vocab_size=384, num_layers=1)
        c.data.update(max_source_len=48, max_target_len=12)
        c.task.update(eval_decode_examples=8, demo_examples=2, beam_size=2)
    return c
