"""Pairs of texts -> fixed-shape encoder-decoder examples, with length filtering/truncation.

An example is three int32 arrays (padded with `pad_id`, default 0):
  source        [S]  source tokens + [eos]
  target_inputs [T]  [start] + target tokens      (the decoder's shifted input; start: bos
                                                   unless given, e.g. T5's pad id)
  targets       [T]  target tokens + [eos]        (loss weight: targets != pad_id)
Over-long examples are cut to S / T (`long_examples="truncate"`, keeping the final EOS) or
left out (`"drop"`); pairs with an empty side are always left out. One pass over the split
counts what happens to every pair (reported in `LengthReport`); examples are then built
lazily, so each process featurizes only the rows it reads.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np
from absl import logging

from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

LONG_EXAMPLES = ("truncate", "drop")


@dataclasses.dataclass(frozen=True)
class LengthReport:
    """What the length pass did to a split's pairs.

    Attributes:
      pairs: pairs in the split.
      kept: pairs that became examples.
      empty: pairs left out because a side is empty (after stripping whitespace).
      long_source, long_target: pairs whose source / target (+ EOS) exceeded the limit
        (truncated, or dropped with `long_examples="drop"`).
      dropped: pairs left out for length.
    """

    pairs: int
    kept: int
    empty: int
    long_source: int
    long_target: int
    dropped: int

    def __str__(self) -> str:
        return (f"{self.kept}/{self.pairs} pairs kept; {self.empty} with an empty side skipped; "
                f"{self.long_source} over-long sources and {self.long_target} over-long targets "
                f"({'dropped: ' + str(self.dropped) if self.dropped else 'truncated'})")


def encode_pair(tokenizer: TextTokenizer, source: str, target: str, max_source_len: int,
                max_target_len: int, pad_id: int = 0,
                start_id: int | None = None) -> dict[str, np.ndarray]:
    """One example (see the module docstring); over-long sides are truncated.

    Args:
      tokenizer: the shared source/target tokenizer.
      source, target: the texts.
      max_source_len, max_target_len: S and T.
      pad_id: the padding id.
      start_id: the decoder's first input (None: the tokenizer's bos).

    Returns:
      {"source": [S], "target_inputs": [T], "targets": [T]} int32.
    """
    src = [*tokenizer.encode(source)[:max_source_len - 1], tokenizer.eos_id]
    tgt = tokenizer.encode(target)[: max_target_len - 1]
    out = {
        "source": src,
        "target_inputs": [tokenizer.bos_id if start_id is None else start_id, *tgt],
        "targets": [*tgt, tokenizer.eos_id],
    }
    lengths = {"source": max_source_len, "target_inputs": max_target_len,
               "targets": max_target_len}
    return {k: np.pad(np.asarray(v, np.int32), (0, lengths[k] - len(v)), constant_values=pad_id)
            for k, v in out.items()}


def encode_source(tokenizer: TextTokenizer, texts: list[str], max_source_len: int,
                  pad_id: int = 0) -> np.ndarray:
    """[N, S] int32 encoder inputs for raw texts (truncated, padded with `pad_id`)."""
    rows = np.full((len(texts), max_source_len), pad_id, np.int32)
    for i, text in enumerate(texts):
        ids = [*tokenizer.encode(text)[:max_source_len - 1], tokenizer.eos_id]
        rows[i, : len(ids)] = ids
    return rows


class Seq2SeqExamples:
    """The kept pairs of a split as a lazily featurized `grain.MapDataset`.

    Args:
      pairs: a pair source (data/pairs.py).
      tokenizer: the shared tokenizer.
      max_source_len, max_target_len: S and T.
      long_examples: "truncate" or "drop".
      pad_id, start_id: see `encode_pair`.

    Attributes:
      indices: [N] positions in `pairs` of the kept examples, in order.
      lengths: [N, 2] each kept example's source and target tokens (EOS included, at most
        S and T): what token batching buckets by.
      report: the `LengthReport`.
      dataset: `grain.MapDataset` of examples.
    """

    def __init__(self, pairs, tokenizer: TextTokenizer, max_source_len: int, max_target_len: int,
                 long_examples: str = "truncate", pad_id: int = 0,
                 start_id: int | None = None):
        if long_examples not in LONG_EXAMPLES:
            raise UserError(f"data.long_examples={long_examples!r} must be one of "
                            f"{list(LONG_EXAMPLES)}")
        if max_source_len < 2 or max_target_len < 2:
            raise UserError(f"data.max_source_len={max_source_len} and data.max_target_len="
                            f"{max_target_len} must be >= 2 (tokens + eos)")
        kept, empty, long_src, long_tgt, dropped = [], 0, 0, 0, 0
        lengths = []
        for i in range(len(pairs)):
            source, target = pairs[i]
            if not source.strip() or not target.strip():
                empty += 1
                continue
            source_len = len(tokenizer.encode(source)) + 1
            target_len = len(tokenizer.encode(target)) + 1
            too_long_src, too_long_tgt = source_len > max_source_len, target_len > max_target_len
            long_src += too_long_src
            long_tgt += too_long_tgt
            if long_examples == "drop" and (too_long_src or too_long_tgt):
                dropped += 1
                continue
            kept.append(i)
            lengths.append((min(source_len, max_source_len), min(target_len, max_target_len)))
        self.indices = np.asarray(kept, np.int64)
        self.lengths = np.asarray(lengths, np.int64).reshape(-1, 2)
        self.report = LengthReport(len(pairs), len(kept), empty, long_src, long_tgt, dropped)
        logging.info("%s %s: %s", getattr(pairs, "name", "pairs"), pairs.split, self.report)
        self._pairs, self._tokenizer = pairs, tokenizer
        self._lengths = (max_source_len, max_target_len)
        self._ids = (pad_id, start_id)
        self.dataset = grain.MapDataset.range(len(kept)).map(self.example)

    def __len__(self) -> int:
        return len(self.indices)

    def pair(self, index: int) -> tuple[str, str]:
        """The (source, target) texts of kept example `index`."""
        return self._pairs[int(self.indices[index])]

    def example(self, index: int) -> dict[str, np.ndarray]:
        """The featurized kept example `index`."""
        return encode_pair(self._tokenizer, *self.pair(index), *self._lengths, *self._ids)
