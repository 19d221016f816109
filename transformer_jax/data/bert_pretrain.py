"""BERT pretraining examples: segment pairs with next-sentence labels and MLM masking.

Documents (any `TextSource`: the stdlib, local files, TFDS text such as `wikipedia` or `c4`)
are cut into segments of `segment_lines` consecutive non-blank lines. Example i starts at the
i-th segment that has a successor in its document; with probability 1/2 segment B is that
successor (NSP label 1, "is next"), else a random segment of another document (label 0).
The pair becomes `[CLS] A [SEP] B [SEP]`, longest-first truncated to `seq_len`, then
masked as in the paper: 15 % of the non-special tokens are selected, of those 80 % become
[MASK], 10 % a random token and 10 % stay unchanged. Everything is a function of
(seed, i), so examples are deterministic and computed lazily by Grain on the process that
needs them (masking is static per example, like the paper's pre-generated data).
"""

from __future__ import annotations

import grain
import numpy as np

from transformer_jax.data.splits import TextSource
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]")
MASK_RATE = 0.15
MASK_TOKEN_RATE = 0.8
RANDOM_TOKEN_RATE = 0.1


class SegmentIndex:
    """Where the segments of every document are: (document, first line, end line).

    Args:
      source: documents.
      segment_lines: non-blank lines per segment.
    """

    def __init__(self, source: TextSource, segment_lines: int):
        if segment_lines < 1:
            raise UserError(f"data.segment_lines={segment_lines} must be >= 1")
        rows = []
        for doc in range(len(source)):
            lines = [i for i, line in enumerate(source[doc].split("\n")) if line.strip()]
            for k in range(0, len(lines), segment_lines):
                chunk = lines[k:k + segment_lines]
                rows.append((doc, chunk[0], chunk[-1] + 1))
        if not rows:
            raise UserError(f"{source.name} ({source.split}) has no non-blank lines to pair")
        self.source = source
        self.table = np.asarray(rows, dtype=np.int64)  # [S, 3]
        docs = self.table[:, 0]
        # Segments followed by a segment of the same document: the possible A segments.
        self.firsts = np.flatnonzero(docs[:-1] == docs[1:])
        if not len(self.firsts) or docs[0] == docs[-1]:
            raise UserError(
                f"{source.name} ({source.split}) needs at least 2 documents with 2 segments of "
                f"{segment_lines} lines each for next-sentence pairs; add text or lower "
                "data.segment_lines"
            )

    def text(self, segment: int) -> str:
        """The lines of one segment, newline-joined."""
        doc, start, end = self.table[segment]
        lines = self.source[int(doc)].split("\n")[start:end]
        return "\n".join(line for line in lines if line.strip())


class PretrainingExamples:
    """Random-access MLM + NSP examples (a Grain source).

    Each example has `tokens`, `token_types`, `mlm_targets` (the original ids), int32 [T];
    `mlm_weights` float32 [T] (1 at selected positions); `nsp_label` int32 [] (1 = B follows
    A); `weight` float32 [] (1; 0 in padding rows of the last eval batch).

    Args:
      index: the segments.
      tokenizer: with the pieces [CLS], [SEP], [MASK].
      seq_len: T.
      seed: the seed of pairing and masking.
    """

    def __init__(self, index: SegmentIndex, tokenizer: TextTokenizer, seq_len: int, seed: int):
        if seq_len < 8:
            raise UserError(f"data.seq_len={seq_len} is too short for segment pairs (>= 8)")
        self.index, self.tokenizer, self.seq_len, self.seed = index, tokenizer, seq_len, seed
        self.cls, self.sep, self.mask = (tokenizer.piece_id(p) for p in SPECIAL_TOKENS)
        # Random replacements come from the ordinary pieces (after pad/unk/bos/eos/symbols).
        self.first_ordinary = max(self.cls, self.sep, self.mask) + 1

    def __len__(self) -> int:
        return len(self.index.firsts)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, i])
        a = int(self.index.firsts[i])
        table = self.index.table
        is_next = rng.random() < 0.5
        if is_next:
            b = a + 1
        else:
            others = np.flatnonzero(table[:, 0] != table[a, 0])
            b = int(others[rng.integers(len(others))])
        tokens_a = self.tokenizer.encode(self.index.text(a))
        tokens_b = self.tokenizer.encode(self.index.text(b))
        truncate_pair(tokens_a, tokens_b, self.seq_len - 3)
        ids = [self.cls, *tokens_a, self.sep, *tokens_b, self.sep]
        types = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
        special = np.zeros(len(ids), bool)
        special[[0, len(tokens_a) + 1, len(ids) - 1]] = True
        tokens, weights = mask_tokens(np.asarray(ids), special, rng, self.mask,
                                      self.first_ordinary, self.tokenizer.vocab_size)
        pad = self.seq_len - len(ids)
        return {
            "tokens": np.pad(tokens, (0, pad)).astype(np.int32),
            "token_types": np.pad(types, (0, pad)).astype(np.int32),
            "mlm_targets": np.pad(ids, (0, pad)).astype(np.int32),
            "mlm_weights": np.pad(weights, (0, pad)).astype(np.float32),
            "nsp_label": np.asarray(int(is_next), np.int32),
            "weight": np.asarray(1.0, np.float32),
        }


def truncate_pair(a: list[int], b: list[int], max_tokens: int) -> None:
    """Drops tokens from the end of the longer list until both fit in `max_tokens` (in place)."""
    while len(a) + len(b) > max_tokens:
        (a if len(a) > len(b) else b).pop()


def mask_tokens(
    ids: np.ndarray,
    special: np.ndarray,
    rng: np.random.Generator,
    mask_id: int,
    first_ordinary: int,
    vocab_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking: selects 15 % of the non-special positions (at least 1), then 80/10/10.

    Args:
      ids: [L] token ids.
      special: [L] True at [CLS]/[SEP] (never selected).
      rng: the example's generator.
      mask_id: the [MASK] id.
      first_ordinary: random replacements are drawn from [first_ordinary, vocab_size).
      vocab_size: V.

    Returns:
      (input ids [L] with the replacements, weights [L] float32: 1 at selected positions).
    """
    candidates = np.flatnonzero(~special)
    weights = np.zeros(len(ids), np.float32)
    tokens = ids.copy()
    if not len(candidates):
        return tokens, weights
    count = max(1, round(MASK_RATE * len(candidates)))
    chosen = rng.choice(candidates, size=count, replace=False)
    weights[chosen] = 1.0
    u = rng.random(count)
    to_mask = chosen[u < MASK_TOKEN_RATE]
    to_random = chosen[(u >= MASK_TOKEN_RATE) & (u < MASK_TOKEN_RATE + RANDOM_TOKEN_RATE)]
    tokens[to_mask] = mask_id
    tokens[to_random] = rng.integers(first_ordinary, vocab_size, size=len(to_random))
    return tokens, weights


def pretraining_dataset(
    source: TextSource, tokenizer: TextTokenizer, *, seq_len: int, segment_lines: int, seed: int
) -> grain.MapDataset:
    """A lazy `MapDataset` of `PretrainingExamples` for `batching.ExampleBatches`."""
    examples = PretrainingExamples(SegmentIndex(source, segment_lines), tokenizer, seq_len, seed)
    return grain.MapDataset.source(examples)
