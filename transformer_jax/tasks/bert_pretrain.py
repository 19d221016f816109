"""BERT pretraining: masked LM + next-sentence prediction on segment pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.data import bert_pretrain, sources
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.models.bert import BertForPretraining
from transformer_jax.placement import Placement
from transformer_jax.tasks import scores
from transformer_jax.tasks.base import LossFn, check_options
from transformer_jax.tasks.encoder import EncoderTask
from transformer_jax.train import losses


def _pretraining_sums(mlm_logits, nsp_logits, batch) -> dict[str, jax.Array]:
    """Sums of one batch's pretraining losses and hits.

    Args:
      mlm_logits: [B, T, V]; nsp_logits: [B, 2].
      batch: `mlm_targets`, `mlm_weights` [B, T] (1 at the selected positions), `nsp_label`
        [B], `weight` [B] (0 for padding rows).

    Returns:
      loss_sum (Σ over examples of mean MLM loss + NSP loss), examples, mlm_loss_sum,
      mlm_tokens, mlm_correct, nsp_correct.
    """
    mlm = losses.token_losses(mlm_logits, batch["mlm_targets"])  # [B, T]
    nsp = losses.token_losses(nsp_logits, batch["nsp_label"])  # [B]
    w, ew = batch["mlm_weights"], batch["weight"]
    per_example = jnp.sum(mlm * w, -1) / jnp.maximum(jnp.sum(w, -1), 1.0) + nsp
    return {
        "loss_sum": jnp.sum(per_example * ew),
        "examples": jnp.sum(ew),
        "mlm_loss_sum": jnp.sum(mlm * w),
        "mlm_tokens": jnp.sum(w),
        "mlm_correct": jnp.sum((jnp.argmax(mlm_logits, -1) == batch["mlm_targets"]) * w),
        "nsp_correct": jnp.sum((jnp.argmax(nsp_logits, -1) == batch["nsp_label"]) * ew),
    }


class BertPretraining(EncoderTask):
    """MLM + NSP. The loss of an example is its mean MLM cross entropy over the selected
    tokens plus its NSP cross entropy; a batch's loss is the mean over examples (a sum with
    example weights, so accumulation and data parallelism stay exact)."""

    name = "bert_pretrain"
    headline_metrics = ("loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy")
    vocab_head = True

    def build_model(self, model_config):
        return BertForPretraining(model_config)

    def loss_fn(self, model) -> LossFn:
        def loss_fn(params, batch, rng):
            mlm_logits, nsp_logits = model.apply(
                {"params": params}, **self.model_inputs(batch), rngs={"dropout": rng})
            sums = _pretraining_sums(mlm_logits, nsp_logits, batch)
            return sums["loss_sum"], sums["examples"]

        return loss_fn

    def _examples(self, tokenizer: TextTokenizer, split: str, seed: int):
        data = self.config.data
        return bert_pretrain.PretrainingExamples(
            bert_pretrain.SegmentIndex(sources.make_source(data, split), data.segment_lines),
            tokenizer, data.seq_len, seed)

    def check_data(self) -> None:
        sources.check_splits(self.config.data)

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        return self.example_batches(self._examples(tokenizer, "train", seed),
                                    batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    def eval_examples(self, tokenizer: TextTokenizer, split: str):
        # A fixed masking seed: every evaluation sees the same pairs and masks.
        return self.cached(("examples", split, tokenizer.fingerprint),
                           lambda: self._examples(tokenizer, split, seed=0))

    def eval_sums(self, model, params, batch) -> dict[str, jax.Array]:
        mlm_logits, nsp_logits = model.apply({"params": params}, **self.model_inputs(batch))
        return _pretraining_sums(mlm_logits, nsp_logits, batch)

    def eval_metrics(self, sums, complete: bool = False) -> dict[str, float]:
        n, tokens = float(sums["examples"]), float(sums["mlm_tokens"])
        return {"loss": float(sums["loss_sum"]) / max(n, 1),
                "mlm_loss": float(sums["mlm_loss_sum"]) / max(tokens, 1),
                "mlm_accuracy": float(sums["mlm_correct"]) / max(tokens, 1),
                "nsp_accuracy": float(sums["nsp_correct"]) / max(n, 1), "examples": n}

    def predict(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                lines: Sequence[str], **options: Any) -> list[str]:
        """Fill-mask: per line, the text with every [MASK] replaced by the model's best
        piece, then per [MASK] a tab and its `top_k` (default 5) pieces with probabilities,
        each piece quoted with "▁" shown as a space, e.g. "import os<TAB>' os' 0.412 'sys'
        0.101". Newlines in the text are written as "\\n"."""
        check_options(self.name, options, ("top_k",))
        tok, t = tokenizer, self.config.data.seq_len
        k = scores.check_top_k(options.get("top_k", 5), tok.vocab_size)
        if not lines:
            return []
        cls, sep, mask = (tok.piece_id(p) for p in bert_pretrain.SPECIAL_TOKENS)
        rows = []
        for line in lines:
            ids = [cls, *tok.encode(line)[:t - 2], sep]
            rows.append({"tokens": np.pad(ids, (0, t - len(ids))).astype(np.int32),
                         "token_types": np.zeros(t, np.int32)})
        out = []
        for first, batch, (mlm_logits, _) in self.run_model(placement, params, rows, limit=None):
            for r, tokens in enumerate(batch["tokens"][:len(rows) - first]):
                ids, probs = scores.top_k_probabilities(mlm_logits[r][tokens == mask], k)
                filled = tokens.copy()
                filled[tokens == mask] = ids[:, 0]  # [masks]
                text = tok.decode(filled[(filled != cls) & (filled != sep)])
                choices = [" ".join(f"{tok.piece_text(i)!r} {p:.3f}"
                                    for i, p in zip(row, ps, strict=True))
                           for row, ps in zip(ids, probs, strict=True)]  # one per [MASK]
                out.append("\t".join([text.replace("\n", "\\n"), *choices]))
        return out
