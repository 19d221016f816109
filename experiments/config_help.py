"""One line per config key: what it means (`experiments.summary --print_config` shows them).

`model.*` meanings come from `ModelConfig`'s docstring (one source for the field and its
doc); every other key is described below. tests/test_configs.py checks that every key of
every config in experiments/configs has a meaning, so a new key must get one here.
"""

from __future__ import annotations

import re

import ml_collections

from transformer_jax.models.config import ModelConfig

MEANINGS = {
    "init_from": "a run directory whose shared weights (and tokenizer) start this run",
    # data
    "data.source": "where the text comes from (see the config file's docstring for values)",
    "data.path": "local data: a file, a directory, a .jsonl, or comma-separated files",
    "data.validation_path": "a separate held-out file (default: a validation_fraction split)",
    "data.validation_fraction": "share of the data held out for validation",
    "data.tfds_name": "TFDS dataset name (data.source=tfds)",
    "data.tfds_data_dir": "where the TFDS dataset is prepared",
    "data.text_key": "the JSONL key / CSV column / TFDS feature holding the text",
    "data.text_b_key": "the second text of a sentence pair ('' = single sentences)",
    "data.label_key": "the JSONL key / CSV column holding the label",
    "data.source_key": "TFDS feature of the seq2seq source ('' = the dataset's default)",
    "data.target_key": "TFDS feature of the seq2seq target ('' = the dataset's default)",
    "data.source_path": "files source: the source side, one example per line",
    "data.target_path": "files source: the target side, line-aligned with source_path",
    "data.num_shards": "virtual data shards, each process reads its own (0 = the checkpoint's)",
    "data.seq_len": "tokens per training example (row)",
    "data.segment_lines": "non-blank source lines per segment (pretraining) or sentence",
    "data.doc_stride": "QA: tokens between the starts of a long context's windows",
    "data.max_source_len": "seq2seq: source tokens per example",
    "data.max_target_len": "seq2seq: target tokens per example",
    "data.long_examples": "seq2seq examples over the lengths: truncate | drop",
    "data.batching": "seq2seq training batches: examples (train.batch_size rows) | tokens",
    "data.tokens_per_batch": "batching=tokens: padded tokens per batch side, at most",
    "data.tokenizer_cache_dir": "tokenizer cache ('' = $TRANSFORMER_JAX_CACHE or ~/.cache)",
    # task
    "task.name": "the task: lm | bert_pretrain | classify | tagging | qa | seq2seq | distill",
    "task.label_smoothing": "label-smoothing mass of the seq2seq loss",
    "task.eval_decode_examples": "validation examples beam-decoded for BLEU/ROUGE per eval",
    "task.demo_examples": "validation examples decoded and shown at the end of training",
    "task.beam_size": "beam size of seq2seq decoding (0 = greedy)",
    "task.alpha": "GNMT length-penalty exponent of beam search",
    "task.repetition_penalty": "beam search: emitted tokens' log-probabilities x this (1 = off)",
    "task.no_repeat_ngram": "beam search: no n-gram of this size twice (0 = off)",
    "task.len_a": "output-length limit a * source length + b: a",
    "task.len_b": "output-length limit a * source length + b: b (0 = max_target_len)",
    "task.max_answer_tokens": "QA: the longest predicted answer span, in tokens",
    "task.student": "distill: the student's task (lm | classify)",
    "task.teacher": "distill: the teacher's training run directory (or hf:DIR), same family",
    "task.kd_alpha": "distill: weight of the soft (teacher KL) loss; 1 - it: hard labels",
    "task.kd_temperature": "distill: softmax temperature T of the soft loss (scaled by T^2)",
    # train
    "train.steps": "optimizer steps in total",
    "train.batch_size": "global batch size (examples per optimizer step)",
    "train.grad_accum_steps": "micro-batches accumulated per optimizer step",
    "train.steps_per_call": "optimizer steps per jitted call",
    "train.seed": "seed of initialization, data order and dropout",
    "train.log_every": "steps between training-metric lines",
    "train.eval_every": "steps between evaluations",
    "train.eval_batches": "validation batches per evaluation (None = the whole split)",
    "train.checkpoint_every": "steps between checkpoints",
    "train.max_to_keep": "checkpoints kept",
    "train.on_nonfinite": "a non-finite loss or gradient: stop | skip the update",
    "train.profile_steps": "START,END: trace those steps into WORKDIR/profile ('' = off)",
    "lora.rank": "LoRA adapter rank (0 = off: full fine-tuning)",
    "lora.alpha": "LoRA scale numerator: the adapter's output is scaled by alpha / rank",
    "lora.dropout": "dropout on the adapters' inputs",
    "lora.targets": "comma-separated regexes over param paths that get adapters",
    "lora.trainable": "comma-separated regexes over param paths trained in full (new heads)",
    "prune.sparsity": "final fraction of each pruned kernel's weights set to 0 (0 = off)",
    "prune.initial_sparsity": "sparsity of the first mask update (the cubic schedule's start)",
    "prune.begin_step": "optimizer step of the first pruning-mask update",
    "prune.end_step": "optimizer step of the last mask update (reaching prune.sparsity)",
    "prune.frequency": "optimizer steps between pruning-mask updates",
    "prune.structure": "'unstructured' (per tensor) or 'N:M' (N of M along the input axis)",
    "prune.targets": "comma-separated regexes over param paths that are pruned",
    # optim
    "optim.optimizer": "the optimizer (adamw)",
    "optim.learning_rate": "peak learning rate",
    "optim.schedule": "learning-rate schedule: cosine | linear | inverse_sqrt | constant",
    "optim.warmup_steps": "linear warmup steps",
    "optim.end_lr_ratio": "final learning rate / peak (cosine, linear)",
    "optim.b1": "Adam beta1",
    "optim.b2": "Adam beta2",
    "optim.eps": "Adam epsilon",
    "optim.weight_decay": "decoupled weight decay (not on biases and norms)",
    "optim.grad_clip_norm": "clip gradients to this global norm (0 = off)",
    # mesh
    "mesh.data": "devices on the data-parallel axis (-1 = the rest)",
    "mesh.fsdp": "devices the parameters are sharded over (FSDP; -1 = the rest)",
    "mesh.tensor": "devices on the tensor-parallel axis",
    # sample
    "sample.prompt": "prompt of the end-of-training sample (and generate's default)",
    "sample.max_new_tokens": "tokens the sample continues (0 = no sample)",
    "sample.temperature": "sampling temperature (0 = greedy)",
    "sample.top_k": "sample from the k most likely tokens (0 = all)",
    "sample.top_p": "nucleus sampling mass (1 = all)",
    "sample.seed": "sampling seed",
}


def _model_meanings() -> dict[str, str]:
    """"model.<field>" -> its line in `ModelConfig`'s Attributes docstring."""
    lines = re.findall(r"^ {6}(\w+): (.+)$", ModelConfig.__doc__ or "", re.MULTILINE)
    meanings = {f"model.{name}": text for name, text in lines}
    meanings["model.preset"] = "the architecture preset; other model keys override it (None)"
    return meanings


def meaning(key: str) -> str | None:
    """The one-line meaning of dotted config `key`, or None when it has none."""
    mixed = re.fullmatch(r"data\.mixture\.[^.]+\.(\w+)", key)  # a mixture source's keys
    if mixed:
        return ("this source's share of the training tokens, relative to the others' weights"
                if mixed[1] == "weight" else MEANINGS.get(f"data.{mixed[1]}"))
    return MEANINGS.get(key) or _model_meanings().get(key)


def describe(config: ml_collections.ConfigDict) -> str:
    """Every key of `config`, "key = value  # meaning", one per line, sections in order."""
    out = []

    def walk(section, prefix: str) -> None:
        for key, value in section.items():
            if isinstance(value, ml_collections.ConfigDict):
                walk(value, f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key} = {value!r}  # {meaning(prefix + key) or '?'}")

    walk(config, "")
    return "\n".join(out)
