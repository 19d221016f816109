"""The project model that holds an `Architecture`'s weights, and the reverse.

`Architecture.task` names the project's task; each task trains one model class (the same
ones `tasks/` build), initialized here on a tiny dummy batch to get the params' shapes and
logical axes.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from transformer_jax.errors import UserError
from transformer_jax.interop.family import Architecture
from transformer_jax.models import bert, encdec, gpt
from transformer_jax.models.config import ModelConfig


def model_for(arch: Architecture, model_config: ModelConfig | None = None
              ) -> tuple[nn.Module, dict]:
    """(module, init kwargs) for `arch` (optionally with another config, e.g. scanned)."""
    cfg = model_config or arch.model
    tokens = jnp.zeros((1, 8), jnp.int32)
    if arch.task == "lm":
        return gpt.GPT(cfg), {"tokens": tokens}
    if arch.task == "bert_pretrain":
        return bert.BertForPretraining(cfg), {"tokens": tokens}
    if arch.task == "classify":
        return bert.BertForSequenceClassification(cfg, arch.num_labels), {"tokens": tokens}
    if arch.task == "tagging":
        return bert.BertForTokenClassification(cfg, arch.num_labels), {"tokens": tokens}
    if arch.task == "qa":
        return bert.BertForQuestionAnswering(cfg), {"tokens": tokens}
    if arch.task == "seq2seq":
        return encdec.EncoderDecoder(cfg), {"source": tokens, "target_inputs": tokens}
    raise UserError(f"task {arch.task!r} has no model to convert into")


def task_of_model(model: nn.Module) -> tuple[str, int | None]:
    """(task name, num_labels) of a project model (the inverse of `model_for`)."""
    for cls, task in ((gpt.GPT, "lm"), (bert.BertForPretraining, "bert_pretrain"),
                      (bert.BertForSequenceClassification, "classify"),
                      (bert.BertForTokenClassification, "tagging"),
                      (bert.BertForQuestionAnswering, "qa"), (encdec.EncoderDecoder, "seq2seq")):
        if isinstance(model, cls):
            return task, getattr(model, "num_classes", None)
    raise UserError(f"{type(model).__name__} has no Hugging Face counterpart to export to")


def default_model_type(config: ModelConfig) -> str:
    """The Hugging Face model_type a project model exports as when none is recorded."""
    if config.family == "gpt":
        return "llama" if config.position == "rope" else "gpt2"
    if config.family == "bert":
        return "bert"
    # Each encoder-decoder family has one layer feature the others lack.
    if config.position == "relative":
        return "t5"
    if config.decoder_embedder:
        return "bart"
    if config.position == "sinusoidal":
        return "marian"
    raise UserError("this encoder-decoder (learned positions, one embedder) matches none of "
                    "t5, bart, marian exactly: pass model_type=...")
