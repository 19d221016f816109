"""Tasks: what the one trainer trains. `make_task(config, model_config)` picks by name."""

from __future__ import annotations

import ml_collections

from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.tasks.base import Batch, BatchIterator, LossFn, Task


def _registry() -> dict[str, type[Task]]:
    from transformer_jax.tasks.bert_pretrain import BertPretraining
    from transformer_jax.tasks.classify import SequenceClassification
    from transformer_jax.tasks.distill import Distillation
    from transformer_jax.tasks.lm import LanguageModeling
    from transformer_jax.tasks.qa import QuestionAnswering
    from transformer_jax.tasks.seq2seq import Seq2Seq
    from transformer_jax.tasks.tagging import TokenClassification

    return {cls.name: cls for cls in (LanguageModeling, BertPretraining, SequenceClassification,
                                      TokenClassification, QuestionAnswering, Seq2Seq,
                                      Distillation)}


def task_name(config: ml_collections.ConfigDict) -> str:
    """`config.task.name`; configs without a task section are language modeling."""
    return config.task.name if "task" in config else "lm"


def make_task(config: ml_collections.ConfigDict, model_config: ModelConfig) -> Task:
    """The task selected by `config.task.name` (UserError for an unknown name)."""
    registry = _registry()
    name = task_name(config)
    if name not in registry:
        raise UserError(f"config.task.name={name!r} is not a task; use one of {sorted(registry)}")
    return registry[name](config, model_config)


__all__ = ["Batch", "BatchIterator", "LossFn", "Task", "make_task", "task_name"]
