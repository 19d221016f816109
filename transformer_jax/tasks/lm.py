"""Causal language modeling (GPT) on packed documents: the quickstart's task.

Batches are packed rows (data/pipeline.py): int32 [B, T] `inputs`, `targets`, `segment_ids`
(0 = padding), `positions`. Evaluation reports held-out loss, perplexity and bits per byte;
the demo is a sampled continuation of `config.sample.prompt`.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from transformer_jax import decode, distributed, metrics
from transformer_jax.data import pipeline, sources
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.gpt import GPT
from transformer_jax.tasks.base import BatchIterator, EvalContext, LossFn, Task
from transformer_jax.train import step as step_lib


class LanguageModeling(Task):
    """Next-token prediction with a decoder-only model (`model.family="gpt"`)."""

    name = "lm"
    headline_metrics = ("loss", "perplexity", "bits_per_byte")

    def __init__(self, config: ml_collections.ConfigDict, model_config: ModelConfig):
        super().__init__(config, model_config)
        if model_config.family != "gpt":
            raise UserError(
                f"model.family={model_config.family!r}: task 'lm' trains decoder-only (gpt) "
                "models; pick a task for this family with --config.task.name"
            )
        if config.data.seq_len > model_config.max_len:
            raise UserError(
                f"data.seq_len={config.data.seq_len} exceeds model.max_len={model_config.max_len}"
            )

    def build_model(self, model_config: ModelConfig) -> nn.Module:
        return GPT(model_config)

    def init_batch(self) -> dict[str, np.ndarray]:
        zeros = np.zeros((1, self.config.data.seq_len), np.int32)
        return {key: zeros for key in pipeline.BATCH_KEYS}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": batch["inputs"], "positions": batch["positions"],
                "segment_ids": batch["segment_ids"]}

    def loss_fn(self, model: nn.Module) -> LossFn:
        return step_lib.lm_loss_fn(model)

    def train_batches(self, tokenizer: Tokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        source = sources.make_source(self.config.data, "train")
        return iter(pipeline.lm_dataset(
            source, tokenizer, seq_len=self.config.data.seq_len, batch_size=batch_size,
            seed=seed, process_index=process_index, process_count=process_count,
            num_shards=self.config.data.get("num_shards") or None,
        ))

    @functools.cached_property
    def _eval_step(self):
        model = self.build_model(self.model_config.replace(deterministic=True))
        return jax.jit(functools.partial(step_lib.eval_step, model=model))

    def evaluate(self, ctx: EvalContext, params: Any, split: str = "validation"
                 ) -> dict[str, float]:
        """Held-out loss (nats/token), perplexity and bits per byte."""
        source = sources.make_source(self.config.data, split)
        token_bytes = jnp.asarray(ctx.tokenizer.token_bytes, jnp.int32)
        totals = {"loss_sum": 0.0, "tokens": 0.0, "bytes": 0.0}
        for batch in pipeline.lm_eval_batches(
            source, ctx.tokenizer, seq_len=self.config.data.seq_len,
            batch_size=ctx.local_batch, max_batches=self.config.train.eval_batches,
            process_index=ctx.process_index, process_count=ctx.process_count,
            num_shards=self.config.data.get("num_shards") or None,
            any_process=distributed.any_process,
        ):
            sums = self._eval_step(params, ctx.to_global(batch), token_bytes)
            for k in totals:
                totals[k] += float(sums[k])
        loss = totals["loss_sum"] / max(totals["tokens"], 1.0)
        return {
            "loss": loss,
            "perplexity": metrics.perplexity(loss),
            "bits_per_byte": metrics.bits_per_byte(totals["loss_sum"], totals["bytes"]),
            "tokens": totals["tokens"],
        }

    def metadata(self) -> dict[str, Any]:
        return {"seq_len": self.config.data.seq_len}

    def demo(self, ctx: EvalContext, params: Any) -> str | None:
        sample = self.config.sample
        if not sample.max_new_tokens:
            return None
        text = sample_text(self.model_config, ctx.tokenizer, params, sample.prompt, sample)
        return f"--- sample (prompt {sample.prompt!r}) ---\n{sample.prompt}{text}\n---"

    def predict(self, ctx: EvalContext, params: Any, lines: list[str]) -> list[str]:
        """Each line's sampled continuation (newlines escaped), with `config.sample` settings."""
        sample = self.config.sample
        return [sample_text(self.model_config, ctx.tokenizer, params, line, sample)
                .replace("\\", "\\\\").replace("\n", "\\n") for line in lines]


def sample_text(model_config: ModelConfig, tokenizer: Tokenizer, params: Any, prompt: str,
                sample_cfg: ml_collections.ConfigDict) -> str:
    """Decodes a continuation of `prompt` with the KV cache (greedy when temperature is 0).

    Call on every process when params are sharded over several (all join the jitted loop).
    """
    ids = [tokenizer.bos_id, *tokenizer.encode(prompt)]
    max_new = min(sample_cfg.max_new_tokens, model_config.max_len - len(ids))
    if max_new <= 0:
        raise UserError(
            f"the prompt is {len(ids)} tokens, no room left in max_len={model_config.max_len}: "
            "use a shorter prompt"
        )
    decoder = GPT(model_config.replace(decode=True, deterministic=True))
    new = decode.generate(
        decoder, params, jnp.asarray([ids], jnp.int32), max_new_tokens=max_new,
        rng=jax.random.key(sample_cfg.seed), temperature=sample_cfg.temperature,
        top_k=sample_cfg.top_k, top_p=sample_cfg.top_p, eos_id=tokenizer.eos_id,
    )
    new = [int(t) for t in np.asarray(new)[0]]
    if tokenizer.eos_id in new:
        new = new[: new.index(tokenizer.eos_id)]
    return tokenizer.decode(new)
