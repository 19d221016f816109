"""Token classification (NER-style tagging) on BERT's hidden states."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from transformer_jax.data import tagging
from transformer_jax.metrics.classification import entity_f1
from transformer_jax.models.bert import BertForTokenClassification
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import LossFn, check_options
from transformer_jax.tasks.encoder import EncoderTask
from transformer_jax.train import losses


class TokenClassification(EncoderTask):
    """Cross entropy on each word's first sub-token; entity-level F1 and word accuracy."""

    name = "tagging"
    headline_metrics = ("loss", "entity_f1", "word_accuracy")

    @functools.cached_property
    def train_sentences(self) -> tagging.TaggedSentences:
        return tagging.make_sentences(self.config.data, "train")

    @property
    def labels(self) -> list[str]:
        """Tag names in id order."""
        return self.train_sentences.labels

    def training_texts(self):
        sentences = self.train_sentences

        class Texts:  # the sentences as space-joined text, for tokenizer training
            name, split = "tagging", "train"
            fingerprint = f"{sentences.where}-{len(sentences)}"

            def __len__(self):
                return len(sentences)

            def __getitem__(self, i):
                return " ".join(sentences[i].words)

        return Texts()

    def metadata(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def build_model(self, model_config):
        return BertForTokenClassification(model_config, len(self.labels))

    def init_batch(self):
        return {"tokens": np.zeros((1, self.config.data.seq_len), np.int32)}

    def model_inputs(self, batch):
        return {"tokens": batch["tokens"]}

    def loss_fn(self, model) -> LossFn:
        def loss_fn(params, batch, rng):
            logits = model.apply({"params": params}, **self.model_inputs(batch),
                                 rngs={"dropout": rng})  # [B, T, C]
            return losses.cross_entropy(logits, batch["labels"], batch["label_weights"])

        return loss_fn

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        features = tagging.TaggingFeatures(self.train_sentences, tokenizer,
                                           self.config.data.seq_len)
        return self.example_batches(features, batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    def _word_tags(self, batch, logits) -> list[list[str]]:
        """Per real row, the predicted tag of each word that fit (in word order)."""
        predictions = np.asarray(logits).argmax(-1)
        rows = []
        for r in range(len(predictions)):
            first = batch["label_weights"][r] > 0
            rows.append([self.labels[int(i)] for i in predictions[r][first]])
        return rows

    # Evaluation: the loss from sums; entity F1 from the decoded tags. ------------------------
    def _sentences(self, split: str) -> tagging.TaggedSentences:
        return self.train_sentences if split == "train" else self.cached(
            ("sentences", split),
            lambda: tagging.make_sentences(self.config.data, split, self.labels))

    def eval_examples(self, tokenizer, split: str):
        return tagging.TaggingFeatures(self._sentences(split), tokenizer,
                                       self.config.data.seq_len)

    def eval_sums(self, model, params, batch) -> dict[str, jax.Array]:
        logits = model.apply({"params": params}, **self.model_inputs(batch))
        loss_sum, weight = losses.cross_entropy(logits, batch["labels"], batch["label_weights"])
        return {"loss_sum": loss_sum, "weight": weight}

    def eval_metrics(self, sums, complete: bool = False) -> dict[str, float]:
        return {"loss": float(sums["loss_sum"]) / max(float(sums["weight"]), 1.0)}

    def decoded_metrics(self, placement: Placement, params: Any, tokenizer, split: str,
                        max_batches: int | None) -> dict[str, float]:
        """Entity-level P/R/F1 and word accuracy of the predicted tags (seqeval-style)."""
        sentences = self._sentences(split)
        features = self.eval_examples(tokenizer, split)
        true, predicted = [], []
        for first, batch, logits in self.run_model(placement, params, features, max_batches):
            for r, tags in enumerate(self._word_tags(batch, logits)):
                if first + r < len(sentences):
                    gold = sentences[first + r].tags
                    true.append(gold)
                    predicted.append(tags + ["O"] * (len(gold) - len(tags)))
        return {**entity_f1(true, predicted), "sentences": len(true)}

    def predict(self, placement: Placement, params: Any, tokenizer, lines: Sequence[str],
                **options: Any) -> list[str]:
        """"word/TAG ..." per line; words are Python tokens for stdlib tagging, else split
        on whitespace."""
        check_options(self.name, options, ())
        if not lines:
            return []
        if self.config.data.source == "stdlib":
            words = [tagging.python_tags(line, 0, 1).words for line in lines]
        else:
            words = [line.split() for line in lines]
        sentences = tagging.TaggedSentences(
            [tagging.Sentence(w, [self.labels[0]] * len(w)) for w in words], self.labels,
            "stdin")
        features = tagging.TaggingFeatures(sentences, tokenizer, self.config.data.seq_len)
        out = []
        for first, batch, logits in self.run_model(placement, params, features, limit=None):
            for r, tags in enumerate(self._word_tags(batch, logits)):
                if first + r < len(lines):
                    w = words[first + r]
                    tags = tags + ["O"] * (len(w) - len(tags))
                    out.append(" ".join(f"{a}/{b}" for a, b in zip(w, tags, strict=True)))
        return out
