"""What the BERT tasks share: the family check, the tokenizer corpus, batching and FLOPs."""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.data import bert_pretrain, sources
from transformer_jax.data.batching import ExampleBatches
from transformer_jax.data.splits import TextSource
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import Batch, Task
from transformer_jax.train import flops


class EncoderTask(Task):
    """Base of the BERT tasks (pretraining and fine-tuning).

    With `data.source=stdlib` the tokenizer is trained on the stdlib corpus exactly as for
    `bert_stdlib` pretraining (same cache key), so a fine-tuning run shares the pretrained
    model's vocabulary.
    """

    special_tokens = bert_pretrain.SPECIAL_TOKENS
    # Whether the model ends in a vocabulary-sized projection at every position (MLM).
    vocab_head = False

    def __init__(self, config, model_config: ModelConfig):
        super().__init__(config, model_config)
        if model_config.family != "bert":
            raise UserError(f"task {self.name!r} trains BERT encoders; model.preset="
                            f"{model_config.preset!r} is a {model_config.family!r} model "
                            "(use bert_tiny, bert_base or bert_large)")
        if config.data.seq_len > model_config.max_len:
            raise UserError(f"data.seq_len={config.data.seq_len} exceeds model.max_len="
                            f"{model_config.max_len}")

    def tokenizer_source(self) -> TextSource:
        """The stdlib corpus for stdlib tasks, else the task's own training texts."""
        if self.config.data.source == "stdlib":
            return sources.StdlibSource("train")
        return self.training_texts()

    def training_texts(self) -> TextSource:
        """Training-split texts for the tokenizer (local/TFDS sources)."""
        return sources.make_source(self.config.data, "train")

    def init_batch(self) -> Batch:
        t = self.config.data.seq_len
        return {"tokens": np.zeros((1, t), np.int32), "token_types": np.zeros((1, t), np.int32)}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": batch["tokens"], "token_types": batch.get("token_types")}

    def real_tokens(self, batch: Batch) -> jax.Array:
        return jnp.sum(batch["tokens"] != self.model_config.pad_id)  # featurizers pad with it

    def flops_per_token(self) -> float:
        return flops.encoder_train_flops_per_token(self.model_config, self.config.data.seq_len,
                                                   vocab_head=self.vocab_head)

    def example_batches(self, examples, *, batch_size: int, seed: int, process_index: int,
                        process_count: int) -> ExampleBatches:
        """Shuffled, repeated training batches of a random-access example source."""
        return ExampleBatches(grain.MapDataset.source(examples), batch_size=batch_size,
                              seed=seed, process_index=process_index,
                              process_count=process_count)

    @abc.abstractmethod
    def eval_examples(self, tokenizer, split: str):
        """The split's featurized examples (random access) for `eval_batches`."""

    def eval_batches(self, tokenizer, split: str, *, batch_size: int, process_index: int,
                     process_count: int, max_batches: int | None) -> Iterable[Batch]:
        """One in-order pass over `eval_examples`, the last batch padded with weight 0."""
        return _Limited(in_order_batches(self.eval_examples(tokenizer, split), batch_size,
                                         process_index, process_count), max_batches)

    def cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` once per key: evaluation data is indexed and featurized once per run."""
        cache = self.__dict__.setdefault("_cached", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def _eval_apply(self, model_config: ModelConfig) -> Callable:
        """The jitted eval forward pass, built once per model config (one compilation)."""
        cache = self.__dict__.setdefault("_eval_applies", {})
        if model_config not in cache:
            model = self.build_model(model_config)
            cache[model_config] = jax.jit(
                lambda p, b: model.apply({"params": p}, **self.model_inputs(b)))
        return cache[model_config]

    def run_model(self, placement: Placement, params: Any, examples, limit: int | None
                  ) -> Iterator[tuple[int, dict[str, np.ndarray], Any]]:
        """Runs the eval model over `examples` in order, on every process alike.

        Yields, per global batch: (index of its first example, the global batch's inputs as
        numpy, the model outputs as numpy), both on every process. Stops after `limit`
        batches (None: all).
        """
        apply = self._eval_apply(self.model_config.replace(deterministic=True))
        batches = in_order_batches(examples, placement.local_batch, placement.process_index,
                                   placement.process_count)
        try:
            for g, batch in enumerate(itertools.islice(batches, limit)):
                inputs = placement.to_global(batch)
                outputs = jax.tree.map(placement.gather, apply(params, inputs))
                yield (g * placement.global_batch,
                       {k: placement.gather(v) for k, v in inputs.items()}, outputs)
        finally:
            batches.close()


def in_order_batches(examples, batch_size: int, process_index: int, process_count: int
                     ) -> ExampleBatches:
    """One pass over random-access `examples` in order; every process yields the same count."""
    return ExampleBatches(grain.MapDataset.source(examples), batch_size=batch_size,
                          shuffle=False, repeat=False, process_index=process_index,
                          process_count=process_count)


class _Limited:
    """The first `limit` batches of a closable iterator (None: all), closable itself."""

    def __init__(self, batches: ExampleBatches, limit: int | None):
        self._batches, self._limit = batches, limit

    def __iter__(self) -> Iterator[Batch]:
        return itertools.islice(self._batches, self._limit)

    def close(self) -> None:
        self._batches.close()
