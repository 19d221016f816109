"""Sequence classification (single sentences and pairs) on BERT's pooled output."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.data import classify
from transformer_jax.metrics.classification import report_from_confusion
from transformer_jax.metrics.confusion_image import confusion_image
from transformer_jax.models.bert import BertForSequenceClassification
from transformer_jax.placement import Placement
from transformer_jax.tasks import scores
from transformer_jax.tasks.base import LossFn, check_options
from transformer_jax.tasks.encoder import EncoderTask
from transformer_jax.train import losses


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
                                 rngs={"dropout": rng})  # [B, C]
            return losses.cross_entropy(logits, batch["label"], batch["weight"])

        return loss_fn

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        features = classify.ClassificationFeatures(self.train_records, tokenizer,
                                                   self.config.data.seq_len)
        return self.example_batches(features, batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    # Evaluation: everything follows from the loss and the confusion matrix. ----------------
    def eval_examples(self, tokenizer, split: str):
        records = (self.train_records if split == "train" else self.cached(
            ("records", split),
            lambda: classify.make_records(self.config.data, split, self.labels)))
        return classify.ClassificationFeatures(records, tokenizer, self.config.data.seq_len)

    def eval_sums(self, model, params, batch) -> dict[str, jax.Array]:
        logits = model.apply({"params": params}, **self.model_inputs(batch))  # [B, C]
        loss_sum, _ = losses.cross_entropy(logits, batch["label"], batch["weight"])
        classes = len(self.labels)
        cells = batch["label"] * classes + jnp.argmax(logits, -1)  # [B] row-major cell ids
        confusion = jnp.zeros(classes * classes, jnp.float32).at[cells].add(batch["weight"])
        return {"loss_sum": loss_sum, "confusion": confusion.reshape(classes, classes)}

    def eval_metrics(self, sums, complete: bool = False) -> dict[str, float]:
        """Loss, accuracy, macro and per-class P/R/F1; the nonzero confusion cells too when
        `complete` (the whole split: C^2 cells are too many to log at every evaluation)."""
        confusion = np.rint(sums["confusion"]).astype(np.int64)
        report = report_from_confusion(confusion, self.labels)
        metrics = {k: report[k] for k in ("accuracy", "macro_precision", "macro_recall",
                                          "macro_f1", "examples")}
        metrics["loss"] = float(sums["loss_sum"]) / max(report["examples"], 1)
        for name, values in report["per_class"].items():
            for key in ("precision", "recall", "f1"):
                metrics[f"{key}/{name}"] = values[key]
        for i, row in enumerate(report["confusion_matrix"] if complete else []):
            for j, count in enumerate(row):
                if count:
                    metrics[f"confusion/{self.labels[i]}/{self.labels[j]}"] = count
        return metrics

    def eval_images(self, sums) -> dict[str, np.ndarray]:
        confusion = np.rint(sums["confusion"]).astype(np.int64)
        return {"confusion_matrix": confusion_image(confusion, self.labels)}

    def predict(self, placement: Placement, params: Any, tokenizer, lines: Sequence[str],
                **options: Any) -> list[str]:
        """Per line "label<TAB>probability", for the `top_k` (default 1) most likely labels,
        most likely first; a tab separates a sentence pair's texts ("text<TAB>text_b")."""
        check_options(self.name, options, ("top_k",))
        k = scores.check_top_k(options.get("top_k", 1), len(self.labels))
        if not lines:
            return []
        records = classify.Records(
            [classify.Record(*[*line.split("\t", 1), ""][:2], self.labels[0])
             for line in lines], self.labels, "stdin", "stdin", "validation")
        features = classify.ClassificationFeatures(records, tokenizer,
                                                   self.config.data.seq_len)
        out = []
        for _, batch, logits in self.run_model(placement, params, features, limit=None):
            ids, probs = scores.top_k_probabilities(
                np.asarray(logits)[batch["weight"] > 0], k)  # [N, k] each
            out.extend(scores.format_choices([self.labels[i] for i in row], p)
                       for row, p in zip(ids, probs, strict=True))
        return out
