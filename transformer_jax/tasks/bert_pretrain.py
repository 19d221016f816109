"""BERT pretraining: masked LM + next-sentence prediction on segment pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from transformer_jax.data import bert_pretrain, sources
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.models.bert import BertForPretraining
from transformer_jax.tasks.base import EvalContext, LossFn
from transformer_jax.tasks.encoder import EncoderTask


def _example_losses(mlm_logits, nsp_logits, batch) -> tuple[jax.Array, jax.Array]:
    """Per-position MLM cross entropy [B, T] and per-example NSP cross entropy [B]."""
    mlm = optax.softmax_cross_entropy_with_integer_labels(mlm_logits, batch["mlm_targets"])
    nsp = optax.softmax_cross_entropy_with_integer_labels(nsp_logits, batch["nsp_label"])
    return mlm, nsp


class BertPretraining(EncoderTask):
    """MLM + NSP. The loss of an example is its mean MLM cross entropy over the selected
    tokens plus its NSP cross entropy; a batch's loss is the mean over examples (a sum with
    example weights, so accumulation and data parallelism stay exact)."""

    name = "bert_pretrain"
    headline_metrics = ("loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy")

    def build_model(self, model_config):
        return BertForPretraining(model_config)

    def loss_fn(self, model) -> LossFn:
        def loss_fn(params, batch, rng):
            mlm_logits, nsp_logits = model.apply(
                {"params": params}, **self.model_inputs(batch), rngs={"dropout": rng})
            mlm, nsp = _example_losses(mlm_logits, nsp_logits, batch)
            w = batch["mlm_weights"]
            per_example = jnp.sum(mlm * w, -1) / jnp.maximum(jnp.sum(w, -1), 1.0) + nsp
            return jnp.sum(per_example * batch["weight"]), jnp.sum(batch["weight"])

        return loss_fn

    def _examples(self, tokenizer: Tokenizer, split: str, seed: int):
        data = self.config.data
        return bert_pretrain.PretrainingExamples(
            bert_pretrain.SegmentIndex(sources.make_source(data, split), data.segment_lines),
            tokenizer, data.seq_len, seed)

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        return self.example_batches(self._examples(tokenizer, "train", seed),
                                    batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    def evaluate(self, ctx: EvalContext, params: Any, split: str = "validation"
                 ) -> dict[str, float]:
        # A fixed masking seed: every evaluation sees the same pairs and masks.
        examples = self.cached(("examples", split, id(ctx.tokenizer)),
                               lambda: self._examples(ctx.tokenizer, split, seed=0))
        sums = np.zeros(6)  # loss, examples, mlm loss, mlm tokens, mlm correct, nsp correct
        for _, batch, (mlm_logits, nsp_logits) in self.run_model(ctx, params, examples):
            mlm, nsp = (np.asarray(x) for x in _example_losses(mlm_logits, nsp_logits, batch))
            w, ew = batch["mlm_weights"], batch["weight"]
            per_example = (mlm * w).sum(-1) / np.maximum(w.sum(-1), 1.0) + nsp
            correct = (mlm_logits.argmax(-1) == batch["mlm_targets"]) * w
            nsp_right = (nsp_logits.argmax(-1) == batch["nsp_label"]) * ew
            sums += [(per_example * ew).sum(), ew.sum(), (mlm * w).sum(), w.sum(),
                     correct.sum(), nsp_right.sum()]
        loss, n, mlm_loss, tokens, right, nsp_right = sums
        return {"loss": loss / max(n, 1), "mlm_loss": mlm_loss / max(tokens, 1),
                "mlm_accuracy": right / max(tokens, 1), "nsp_accuracy": nsp_right / max(n, 1),
                "examples": n}

    def predict(self, ctx: EvalContext, params: Any, lines: Sequence[str]) -> list[str]:
        """Fill-mask: each line with every [MASK] replaced by the model's best token."""
        if not lines:
            return []
        tok, t = ctx.tokenizer, self.config.data.seq_len
        cls, sep, mask = (tok.piece_id(p) for p in bert_pretrain.SPECIAL_TOKENS)
        rows = []
        for line in lines:
            ids = [cls, *tok.encode(line)[:t - 2], sep]
            rows.append({"tokens": np.pad(ids, (0, t - len(ids))).astype(np.int32),
                         "token_types": np.zeros(t, np.int32)})
        out = []
        for first, batch, (mlm_logits, _) in self.run_model(ctx, params, rows, limit=None):
            best = np.asarray(mlm_logits).argmax(-1)
            for r, tokens in enumerate(batch["tokens"][:len(rows) - first]):
                filled = np.where(tokens == mask, best[r], tokens)
                out.append(tok.decode(filled[(filled != cls) & (filled != sep)]))
        return out
