"""Causal language modeling (GPT) on packed documents: the quickstart's task.

Batches are packed rows (data/lm_pipeline.py): int32 [B, T] `inputs`, `targets`,
`segment_ids` (0 = padding), `positions`. Evaluation reports held-out loss, perplexity and
bits per byte; the demo is a sampled continuation of `config.sample.prompt`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from transformer_jax import distributed, metrics
from transformer_jax.data import lm_pipeline, mixture, sources
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.decoding import lm as lm_decoding
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.gpt import GPT
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import Batch, BatchIterator, LossFn, Task, check_options
from transformer_jax.train import flops, losses

# experiments.predict / generate options, with their `config.sample` defaults.
SAMPLE_OPTIONS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")


def lm_loss_fn(model: nn.Module) -> LossFn:
    """Next-token cross entropy of a causal LM on a packed batch."""

    def loss_fn(params, batch: Batch, rng: jax.Array):
        logits = model.apply(
            {"params": params},
            batch["inputs"],
            positions=batch["positions"],
            segment_ids=batch["segment_ids"],
            rngs={"dropout": rng},
        )  # [B, T, V]
        return losses.cross_entropy(logits, batch["targets"], batch["segment_ids"] > 0)

    return loss_fn


def eval_step(params: Any, batch: Batch, *, model: nn.Module, num_sources: int = 0
              ) -> dict[str, jax.Array]:
    """Sums for held-out LM metrics on one batch (no dropout).

    Args:
      params: model parameters.
      batch: a packed LM batch plus `target_bytes` [B, T] int32, the UTF-8 bytes each target
        token decodes to (for bits per byte); rows of all-zero segment ids are padding. A
        mixture's batch also has `source` [B] int32, each row's source number.
      model: the model with `deterministic=True`.
      num_sources: K > 0 for a mixture: also sum per source.

    Returns:
      loss_sum (nats), tokens, bytes: scalars to add up over the eval set; with K sources
      also source_loss_sum, source_tokens, source_bytes: [K].
    """
    logits = model.apply(
        {"params": params},
        batch["inputs"],
        positions=batch["positions"],
        segment_ids=batch["segment_ids"],
    )
    weights = batch["segment_ids"] > 0
    loss_sum, tokens = losses.cross_entropy(logits, batch["targets"], weights)
    num_bytes = jnp.sum(jnp.where(weights, batch["target_bytes"], 0))
    sums = {"loss_sum": loss_sum, "tokens": tokens, "bytes": num_bytes.astype(jnp.float32)}
    if num_sources:
        rows = jax.nn.one_hot(batch["source"], num_sources)  # [B, K]
        w = weights.astype(jnp.float32)  # [B, T]
        per_token = {"source_loss_sum": losses.token_losses(logits, batch["targets"]) * w,
                     "source_tokens": w, "source_bytes": w * batch["target_bytes"]}
        sums |= {k: jnp.einsum("bt,bk->k", v, rows) for k, v in per_token.items()}
    return sums


def _lm_metrics(loss_sum: float, tokens: float, num_bytes: float) -> dict[str, float]:
    """Loss (nats/token), perplexity, bits per byte and tokens from summed statistics."""
    loss_sum, tokens = float(loss_sum), float(tokens)
    loss = loss_sum / max(tokens, 1.0)
    return {"loss": loss, "perplexity": metrics.perplexity(loss),
            "bits_per_byte": metrics.bits_per_byte(loss_sum, float(num_bytes)), "tokens": tokens}


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
        self.mixture = mixture.parse(config.data)  # [] = the one source of config.data

    def build_model(self, model_config: ModelConfig) -> nn.Module:
        return GPT(model_config)

    def init_batch(self) -> Batch:
        zeros = np.zeros((1, self.config.data.seq_len), np.int32)
        return {key: zeros for key in lm_pipeline.BATCH_KEYS}

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": batch["inputs"], "positions": batch["positions"],
                "segment_ids": batch["segment_ids"]}

    def loss_fn(self, model: nn.Module) -> LossFn:
        return lm_loss_fn(model)

    def check_data(self) -> None:
        if self.mixture:
            mixture.check_splits(self.mixture)
        else:
            sources.check_splits(self.config.data)

    def tokenizer_source(self) -> sources.TextSource:
        if self.mixture:
            return mixture.ConcatSource(self.mixture)
        return super().tokenizer_source()

    def train_batches(self, tokenizer: TextTokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        if self.mixture:
            return iter(mixture.mixture_dataset(
                [(m.name, m.make("train"), m.weight) for m in self.mixture], tokenizer,
                seq_len=self.config.data.seq_len, batch_size=batch_size, seed=seed,
                process_index=process_index, process_count=process_count,
                num_shards=self.config.data.get("num_shards") or None,
            ))
        source = sources.make_source(self.config.data, "train")
        return iter(lm_pipeline.lm_dataset(
            source, tokenizer, seq_len=self.config.data.seq_len, batch_size=batch_size,
            seed=seed, process_index=process_index, process_count=process_count,
            num_shards=self.config.data.get("num_shards") or None,
        ))

    def real_tokens(self, batch: Batch) -> jax.Array:
        return jnp.sum(batch["segment_ids"] > 0)  # packing pads only the rows' tails

    def flops_per_token(self) -> float:
        return flops.train_flops_per_token(self.model_config, self.config.data.seq_len)

    # Evaluation ---------------------------------------------------------------------------
    def eval_batches(self, tokenizer: TextTokenizer, split: str, *, batch_size: int,
                     process_index: int, process_count: int, max_batches: int | None
                     ) -> Iterable[Batch]:
        """Packed held-out rows, with each target token's byte count (`target_bytes`)."""
        token_bytes = np.asarray(tokenizer.token_bytes, np.int32)
        options = dict(
            seq_len=self.config.data.seq_len, batch_size=batch_size, max_batches=max_batches,
            process_index=process_index, process_count=process_count,
            num_shards=self.config.data.get("num_shards") or None,
            any_process=distributed.any_process)
        if self.mixture:
            batches = mixture.mixture_eval_batches(
                [(m.name, m.make(split)) for m in self.mixture], tokenizer, **options)
        else:
            batches = lm_pipeline.lm_eval_batches(
                sources.make_source(self.config.data, split), tokenizer, **options)
        for batch in batches:
            yield {**batch, "target_bytes": token_bytes[batch["targets"]]}

    def eval_sums(self, model: nn.Module, params: Any, batch: dict[str, jax.Array]
                  ) -> dict[str, jax.Array]:
        return eval_step(params, batch, model=model, num_sources=len(self.mixture))

    def eval_metrics(self, sums: dict[str, np.ndarray], complete: bool = False
                     ) -> dict[str, float]:
        """Held-out loss (nats/token), perplexity and bits per byte; for a mixture also
        `<source name>/<metric>` per source."""
        out = _lm_metrics(sums["loss_sum"], sums["tokens"], sums["bytes"])
        for k, entry in enumerate(self.mixture):
            per_source = _lm_metrics(sums["source_loss_sum"][k], sums["source_tokens"][k],
                                     sums["source_bytes"][k])
            out |= {f"{entry.name}/{key}": value for key, value in per_source.items()}
        return out

    # After training and for inference -----------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"seq_len": self.config.data.seq_len}

    def demo(self, placement: Placement, params: Any, tokenizer: TextTokenizer) -> str | None:
        sample = self.config.sample
        if not sample.max_new_tokens:
            return None
        text = self.continuation(params, tokenizer, sample.prompt)
        return f"--- sample (prompt {sample.prompt!r}) ---\n{sample.prompt}{text}\n---"

    def predict(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                lines: Sequence[str], **options: Any) -> list[str]:
        """Each line's sampled continuation (newlines escaped as \\n).

        Options (default: `config.sample`): max_new_tokens, temperature (0 = greedy),
        top_k, top_p, seed.
        """
        return [self.continuation(params, tokenizer, line, **options)
                .replace("\\", "\\\\").replace("\n", "\\n") for line in lines]

    def continuation(self, params: Any, tokenizer: TextTokenizer, prompt: str,
                     **options: Any) -> str:
        """The text continuing `prompt`, decoded with the KV cache (see `predict`'s options).

        Call on every process when params are sharded over several (all join the loop).
        """
        check_options(self.name, options, SAMPLE_OPTIONS)
        sample = {key: self.config.sample[key] for key in SAMPLE_OPTIONS} | options
        cfg = self.model_config
        ids = [tokenizer.bos_id, *tokenizer.encode(prompt)]
        max_new = min(sample["max_new_tokens"], cfg.max_len - len(ids))
        if max_new <= 0:
            raise UserError(
                f"the prompt is {len(ids)} tokens, no room left in max_len={cfg.max_len}: "
                "use a shorter prompt"
            )
        if max_new < sample["max_new_tokens"]:
            logging.warning("max_new_tokens=%d capped at %d: the prompt is %d tokens of the "
                            "model's max_len=%d", sample["max_new_tokens"], max_new, len(ids),
                            cfg.max_len)
        decoder = GPT(cfg.replace(decode=True, deterministic=True))
        new = lm_decoding.generate(
            decoder, params, jnp.asarray([ids], jnp.int32), max_new_tokens=max_new,
            rng=jax.random.key(sample["seed"]), temperature=sample["temperature"],
            top_k=sample["top_k"], top_p=sample["top_p"], eos_id=tokenizer.eos_id,
        )
        new = [int(t) for t in np.asarray(new)[0]]
        if tokenizer.eos_id in new:
            new = new[: new.index(tokenizer.eos_id)]
        return tokenizer.decode(new)
