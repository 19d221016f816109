"""Extractive question answering: start/end span logits over the context (SQuAD v1.1)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.data import qa
from transformer_jax.errors import UserError
from transformer_jax.metrics.qa import squad_metrics
from transformer_jax.models.bert import BertForQuestionAnswering
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import LossFn, check_options
from transformer_jax.tasks.encoder import EncoderTask
from transformer_jax.train import losses


class QuestionAnswering(EncoderTask):
    """Mean of the start and end cross entropies; SQuAD exact match and F1."""

    name = "qa"
    headline_metrics = ("loss", "exact_match", "f1")

    @functools.cached_property
    def train_questions(self) -> list[qa.Question]:
        return qa.make_questions(self.config.data, "train")

    def training_texts(self):
        questions = self.train_questions

        class Texts:  # questions and contexts, for tokenizer training
            name, split = "qa", "train"
            fingerprint = f"{len(questions)}-{questions[0].id}-{questions[-1].id}"

            def __len__(self):
                return len(questions)

            def __getitem__(self, i):
                return f"{questions[i].question}\n{questions[i].context}"

        return Texts()

    def build_model(self, model_config):
        return BertForQuestionAnswering(model_config)

    def _features(self, questions, tokenizer) -> qa.Features:
        data = self.config.data
        return qa.Features(questions, tokenizer, data.seq_len, data.doc_stride)

    def _span_losses(self, start, end, batch) -> tuple[jax.Array, jax.Array]:
        """Sum and weight of the mean of the start and end cross entropies."""
        per_example = (losses.token_losses(start, batch["start"])
                       + losses.token_losses(end, batch["end"])) / 2  # [B]
        return jnp.sum(per_example * batch["weight"]), jnp.sum(batch["weight"])

    def loss_fn(self, model) -> LossFn:
        def loss_fn(params, batch, rng):
            start, end = model.apply({"params": params}, **self.model_inputs(batch),
                                     rngs={"dropout": rng})  # [B, T] each
            return self._span_losses(start, end, batch)

        return loss_fn

    def train_batches(self, tokenizer, *, batch_size, seed, process_index, process_count):
        return self.example_batches(self._features(self.train_questions, tokenizer),
                                    batch_size=batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count)

    def answers(self, placement: Placement, params: Any, features: qa.Features,
                limit: int | None) -> dict[int, str]:
        """The best span's context text per question index (questions seen within `limit`
        batches; None: all)."""
        questions = features.questions
        max_tokens = self.config.task.max_answer_tokens
        best: dict[int, tuple[float, str]] = {}
        for first, _, (starts, ends) in self.run_model(placement, params, features, limit):
            for r in range(len(starts)):
                if first + r >= len(features):
                    break
                q, offset, chars = features.window(first + r)
                score, s, e = qa.best_span(np.asarray(starts[r]), np.asarray(ends[r]), offset,
                                           len(chars), max_tokens)
                text = questions[q].context[chars[s, 0]:chars[e, 1]]
                if q not in best or score > best[q][0]:
                    best[q] = (score, text)
        return {q: text for q, (_, text) in best.items()}

    # Evaluation: the span loss from sums; SQuAD EM/F1 from the decoded answers. -------------
    def eval_examples(self, tokenizer, split: str) -> qa.Features:
        def build() -> qa.Features:
            questions = (self.train_questions if split == "train" else
                         qa.make_questions(self.config.data, split))
            return self._features(questions, tokenizer)

        return self.cached(("features", split, tokenizer.fingerprint), build)

    def eval_sums(self, model, params, batch) -> dict[str, jax.Array]:
        start, end = model.apply({"params": params}, **self.model_inputs(batch))
        loss_sum, weight = self._span_losses(start, end, batch)
        return {"loss_sum": loss_sum, "weight": weight}

    def eval_metrics(self, sums, complete: bool = False) -> dict[str, float]:
        return {"loss": float(sums["loss_sum"]) / max(float(sums["weight"]), 1.0)}

    def decoded_metrics(self, placement: Placement, params: Any, tokenizer, split: str,
                        max_batches: int | None) -> dict[str, float]:
        """SQuAD exact match and F1 of the best spans."""
        features = self.eval_examples(tokenizer, split)
        questions = features.questions
        predicted = self.answers(placement, params, features, max_batches)
        # A question is scored once all its windows were seen (a limited eval may cut one).
        done = sorted(predicted)[:-1] if len(predicted) < len(questions) else sorted(predicted)
        return squad_metrics([predicted[q] for q in done],
                             [questions[q].answers for q in done])

    def predict(self, placement: Placement, params: Any, tokenizer, lines: Sequence[str],
                **options: Any) -> list[str]:
        """The answer span per "question<TAB>context" line."""
        check_options(self.name, options, ())
        questions = []
        for number, line in enumerate(lines, 1):
            if "\t" not in line:
                raise UserError(f"stdin line {number}: expected 'question<TAB>context'")
            question, context = line.split("\t", 1)
            questions.append(qa.Question(str(number), question, context, [], []))
        if not questions:
            return []
        predicted = self.answers(placement, params, self._features(questions, tokenizer),
                                 limit=None)
        return [predicted[q] for q in range(len(questions))]
