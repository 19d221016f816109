"""Sequence classification (single sentences and pairs) on BERT's pooled output."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from transformer_jax.data import classify
from transformer_jax.metrics.classification import classification_report
from transformer_jax.models.bert import BertForSequenceClassification
from transformer_jax.tasks.base import EvalContext, LossFn
from transformer_jax.tasks.encoder import EncoderTask


class SequenceClassification(EncoderTask):
    """Cross entropy on the [CLS] pooled output; accuracy, macro/per-class P/R/F1."""

    name = "classify"
    headline_metrics = ("loss", "accuracy", "macro_f1")

    @functools.cached_property
    def train_records(self) -> classify.Records:
        return classify.make_records(self.config.data, "train")

    @property
    def labels(self) -> list[str]:
        """Class names in id order (from the training data or the dataset's ClassLabel)."""
        return self.train_records.labels

    def training_texts(self):
        return self.train_records

    def metadata(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def build_model(self, model_config):
        return BertForSequenceClassification(model_config, len(self.labels))

    def loss_fn(self, model) -> LossFn:
        def loss_fn(params, batch, rng):
            logits = model.apply({"params": params}, **self.model_inputs(batch),
                                 rngs={"dropout": rng})
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
            return jnp.sum(losses * batch["weight"]), jnp.sum(batch["weight"])

        return loss_fn

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        features = classify.ClassificationFeatures(self.train_records, tokenizer,
                                                   self.config.data.seq_len)
        return self.example_batches(features, batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    def evaluate(self, ctx: EvalContext, params: Any, split: str = "validation"
                 ) -> dict[str, float]:
        records = (self.train_records if split == "train" else self.cached(
            ("records", split),
            lambda: classify.make_records(self.config.data, split, self.labels)))
        features = classify.ClassificationFeatures(records, ctx.tokenizer,
                                                   self.config.data.seq_len)
        labels, predictions, loss = [], [], 0.0
        for _, batch, logits in self.run_model(ctx, params, features):
            real = batch["weight"] > 0
            loss += float((optax.softmax_cross_entropy_with_integer_labels(
                logits, batch["label"]) * batch["weight"]).sum())
            labels.append(batch["label"][real])
            predictions.append(np.asarray(logits).argmax(-1)[real])
        labels, predictions = np.concatenate(labels), np.concatenate(predictions)
        report = classification_report(labels, predictions, self.labels)
        metrics = {k: report[k] for k in ("accuracy", "macro_precision", "macro_recall",
                                          "macro_f1", "examples")}
        metrics["loss"] = loss / max(len(labels), 1)
        for name, values in report["per_class"].items():
            for key in ("precision", "recall", "f1"):
                metrics[f"{key}/{name}"] = values[key]
        if self.config.train.get("eval_batches") is None:  # the full report: nonzero cells
            for i, row in enumerate(report["confusion_matrix"]):
                for j, count in enumerate(row):
                    if count:
                        metrics[f"confusion/{self.labels[i]}/{self.labels[j]}"] = count
        return metrics

    def predict(self, ctx: EvalContext, params: Any, lines: Sequence[str]) -> list[str]:
        """A label per line; a tab separates a sentence pair ("text<TAB>text_b")."""
        if not lines:
            return []
        records = classify.Records(
            [classify.Record(*[*line.split("\t", 1), ""][:2], self.labels[0])
             for line in lines], self.labels, "stdin", "stdin", "validation")
        features = classify.ClassificationFeatures(records, ctx.tokenizer,
                                                   self.config.data.seq_len)
        out = []
        for _, batch, logits in self.run_model(ctx, params, features, limit=None):
            out.extend(self.labels[int(i)] for i in np.asarray(logits).argmax(-1)
                       [batch["weight"] > 0])
        return out
