"""What the BERT tasks share: the family check, the tokenizer corpus and the eval loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np

from transformer_jax.data import bert_pretrain, sources
from transformer_jax.data.batching import ExampleBatches
from transformer_jax.data.splits import TextSource
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.tasks.base import EvalContext, Task


class EncoderTask(Task):
    """Base of the BERT tasks (pretraining and fine-tuning).

    With `data.source=stdlib` the tokenizer is trained on the stdlib corpus exactly as for
    `bert_stdlib` pretraining (same cache key), so a fine-tuning run shares the pretrained
    model's vocabulary.
    """

    special_tokens = bert_pretrain.SPECIAL_TOKENS

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

    def init_batch(self):
        t = self.config.data.seq_len
        return {"tokens": np.zeros((1, t), np.int32), "token_types": np.zeros((1, t), np.int32)}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": batch["tokens"], "token_types": batch.get("token_types")}

    def example_batches(self, examples, *, batch_size: int, seed: int, process_index: int,
                        process_count: int) -> ExampleBatches:
        """Shuffled, repeated training batches of a random-access example source."""
        return ExampleBatches(grain.MapDataset.source(examples), batch_size=batch_size,
                              seed=seed, process_index=process_index,
                              process_count=process_count)

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

    def run_model(self, ctx: EvalContext, params: Any, examples, limit: int | str | None = "config"
                  ) -> Iterator[tuple[int, dict[str, np.ndarray], Any]]:
        """Runs the eval model over `examples` in order, on every process alike.

        Yields, per global batch: (index of its first example, the global batch's inputs as
        numpy, the model outputs as numpy), both on every process. Stops after `limit`
        batches; "config" means `config.train.eval_batches` (None: all).
        """
        apply = self._eval_apply(ctx.model_config.replace(deterministic=True))
        batches = ExampleBatches(grain.MapDataset.source(examples), batch_size=ctx.local_batch,
                                 shuffle=False, repeat=False, process_index=ctx.process_index,
                                 process_count=ctx.process_count)
        if limit == "config":
            limit = self.config.train.get("eval_batches")
        global_batch = ctx.local_batch * ctx.process_count
        for g, batch in enumerate(batches):
            if limit is not None and g >= limit:
                break
            inputs = ctx.to_global(batch)
            outputs = jax.tree.map(ctx.gather, apply(params, inputs))
            yield g * global_batch, {k: ctx.gather(v) for k, v in inputs.items()}, outputs
        batches.close()


def eval_context(model_config: ModelConfig, tokenizer, local_batch: int, config) -> EvalContext:
    """A one-process `EvalContext` on all local devices (tests and notebooks)."""
    from transformer_jax import sharding

    mesh = sharding.make_mesh(data=-1, fsdp=1, tensor=1)
    return EvalContext(config=config, model_config=model_config, tokenizer=tokenizer,
                       mesh=mesh, batch_sharding=sharding.batch_sharding(mesh),
                       local_batch=local_batch)
