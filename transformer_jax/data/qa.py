"""Extractive QA data: SQuAD-format questions, doc-stride features with character offsets.

Sources: SQuAD v1.1-format JSON files (`data.path` for training, `data.validation_path`
for evaluation), or TFDS `squad` (`data.source=tfds`). A feature is
`[CLS] question [SEP] context window [SEP]`; long contexts give several windows whose starts
are `doc_stride` tokens apart. Every context token keeps its character span in the context
(from the lossless tokenizer's byte lengths), so a predicted token span maps back to the exact
context characters. A training feature whose window does not contain the answer points at
[CLS] (position 0), as in the paper's SQuAD v1.1 setup.
"""

from __future__ import annotations

import json
import pathlib
from typing import NamedTuple

import ml_collections
import numpy as np

from transformer_jax.data import tfds_source
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError


class Question(NamedTuple):
    """One question: id, question text, context, gold answers and their character starts."""

    id: str
    question: str
    context: str
    answers: list[str]
    starts: list[int]


def read_squad(path: pathlib.Path) -> list[Question]:
    """Questions of a SQuAD-format JSON file; UserError for answers not found in the context."""
    if not path.is_file():
        raise UserError(f"SQuAD file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not SQuAD-format JSON ({e!r}); expected "
                        '{"data": [{"paragraphs": [{"context", "qas"}]}]}') from e
    questions = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                starts = [int(a["answer_start"]) for a in qa["answers"]]
                questions.append(make_question(str(qa["id"]), qa["question"], context,
                                               answers, starts, str(path)))
    if not questions:
        raise UserError(f"{path} has no questions")
    return questions


def make_question(qid: str, question: str, context: str, answers: list[str],
                  starts: list[int], where: str) -> Question:
    """A checked `Question`: every answer must be the context's text at its start."""
    for text, start in zip(answers, starts, strict=True):
        if not text or start < 0 or context[start:start + len(text)] != text:
            raise UserError(f"{where}: question {qid!r}: answer {text!r} at character {start} "
                            "is not in the context (answer_start must index the context)")
    return Question(qid, question, context, answers, starts)


def make_questions(data: ml_collections.ConfigDict, split: str) -> list[Question]:
    """The questions of `split` for the config's `data` section."""
    if data.source == "tfds":
        rows, _, tfds_split = tfds_source.open_split(data.tfds_name or "squad", split,
                                                     data.tfds_data_dir or None)
        where = f"{data.tfds_name or 'squad'}:{tfds_split}"
        return [make_question(row["id"].decode(), row["question"].decode(),
                              row["context"].decode(),
                              [t.decode() for t in row["answers"]["text"]],
                              [int(s) for s in row["answers"]["answer_start"]], where)
                for row in (rows[i] for i in range(len(rows)))]
    if data.source == "local":
        path = data.path if split == "train" else data.validation_path
        if not path:
            raise UserError(f"data.{'path' if split == 'train' else 'validation_path'} is "
                            "empty; set it to a SQuAD-format JSON file")
        return read_squad(pathlib.Path(path).expanduser())
    raise UserError(f"data.source={data.source!r} is unknown for QA; use 'local' or 'tfds'")


def token_offsets(tokenizer: TextTokenizer, text: str) -> tuple[list[int], np.ndarray]:
    """Token ids of `text` and each token's [start, end) character span.

    Returns:
      (ids, offsets int64 [L, 2]). A token that is part of a multi-byte character (a byte
      piece) gets the span of that whole character.
    """
    ids = tokenizer.encode(text)
    ends = np.cumsum(tokenizer.token_bytes[ids]) if ids else np.zeros(0, np.int64)
    # char_at[b] = index of the character holding byte b (plus the end).
    sizes = [len(ch.encode("utf-8")) for ch in text]
    char_at = np.append(np.repeat(np.arange(len(text)), sizes), len(text))
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    start_chars = char_at[starts]
    end_chars = np.where(ends > 0, char_at[np.maximum(ends - 1, 0)] + 1, 0)
    return ids, np.stack([start_chars, np.maximum(end_chars, start_chars)], axis=1)


class Features:
    """Doc-stride features of questions (a Grain source).

    Each feature: `tokens`, `token_types` int32 [T]; `start`, `end` int32 [] (answer token
    positions, 0 = not in this window); `weight` float32 []. `window(i)` says which question
    and which context characters each position of feature i covers.

    Args:
      questions: the questions.
      tokenizer: with [CLS] and [SEP].
      seq_len: T.
      doc_stride: tokens between the starts of consecutive windows of one context.
      max_question_tokens: questions are cut to this many tokens (default: 64 or half of T).
    """

    def __init__(self, questions: list[Question], tokenizer: TextTokenizer, seq_len: int,
                 doc_stride: int, max_question_tokens: int | None = None):
        self.questions, self.tokenizer, self.seq_len = questions, tokenizer, seq_len
        self.cls, self.sep = tokenizer.piece_id("[CLS]"), tokenizer.piece_id("[SEP]")
        if max_question_tokens is None:
            max_question_tokens = min(64, seq_len // 2)
        rows = []  # (question, window start in context tokens)
        contexts: dict[str, tuple[list[int], np.ndarray]] = {}
        self.encoded = []
        for q, question in enumerate(questions):
            if question.context not in contexts:
                contexts[question.context] = token_offsets(tokenizer, question.context)
            q_ids = tokenizer.encode(question.question)[:max_question_tokens]
            self.encoded.append((q_ids, *contexts[question.context]))
            window = self.window_tokens(q)
            if window < 1 or doc_stride < 1:
                raise UserError(f"data.seq_len={seq_len} leaves no room for the context after "
                                f"a {len(q_ids)}-token question (doc_stride={doc_stride})")
            length, start = len(contexts[question.context][0]), 0
            while True:
                rows.append((q, start))
                if start + window >= length:
                    break
                start += min(doc_stride, window)
        self.rows = np.asarray(rows, np.int64)

    def window_tokens(self, q: int) -> int:
        """Context tokens per window for question q."""
        return self.seq_len - len(self.encoded[q][0]) - 3

    def __len__(self) -> int:
        return len(self.rows)

    def window(self, i: int) -> tuple[int, int, np.ndarray]:
        """(question index, position of the first context token, char offsets [W, 2])."""
        q, start = self.rows[i]
        q_ids, _, offsets = self.encoded[q]
        end = min(start + self.window_tokens(q), len(offsets))
        return int(q), len(q_ids) + 2, offsets[start:end]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        q, start = (int(x) for x in self.rows[i])
        q_ids, c_ids, offsets = self.encoded[q]
        end = min(start + self.window_tokens(q), len(c_ids))
        ids = [self.cls, *q_ids, self.sep, *c_ids[start:end], self.sep]
        types = [0] * (len(q_ids) + 2) + [1] * (end - start + 1)
        first = len(q_ids) + 2
        answer_start = answer_end = 0
        question = self.questions[q]
        if question.answers:
            lo, hi = question.starts[0], question.starts[0] + len(question.answers[0])
            inside = np.flatnonzero((offsets[start:end, 1] > lo) & (offsets[start:end, 0] < hi))
            covered = len(inside) and offsets[start + inside[0], 0] <= lo and \
                offsets[start + inside[-1], 1] >= hi
            if covered:
                answer_start, answer_end = first + inside[0], first + inside[-1]
        pad = self.seq_len - len(ids)
        return {"tokens": np.pad(ids, (0, pad)).astype(np.int32),
                "token_types": np.pad(types, (0, pad)).astype(np.int32),
                "start": np.asarray(answer_start, np.int32),
                "end": np.asarray(answer_end, np.int32),
                "weight": np.asarray(1.0, np.float32)}


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, first: int, length: int,
              max_answer_tokens: int) -> tuple[float, int, int]:
    """The best-scoring (start <= end < start + max_answer_tokens) span in the context.

    Args:
      start_logits, end_logits: [T] scores of one feature.
      first: position of the first context token; length: context tokens in the window.
      max_answer_tokens: longest answer considered.

    Returns:
      (score, start, end) as context-window token indices (0-based, inclusive).
    """
    s = start_logits[first:first + length]
    e = end_logits[first:first + length]
    scores = s[:, None] + e[None, :]
    i, j = np.indices(scores.shape)
    scores = np.where((j >= i) & (j < i + max_answer_tokens), scores, -np.inf)
    flat = int(np.argmax(scores))
    start, end = divmod(flat, scores.shape[1])
    return float(scores[start, end]), start, end
