r"""Observed source shares of a mixed LM stream vs its weights.

  python -m benchmarks.mixture_proportions --batches=500 --weights=2,1,1

Three sources whose documents are made of one letter each ("a a aa ...", "b ...", ...), so a
packed row's text names its source, mixed by `data/mixture.py:mixture_dataset` (seq_len 64,
batch 16, 2 virtual shards) and tokenized with the quickstart's 8,192-piece stdlib tokenizer
(cached, or trained on first use). Prints each source's share of the rows (= of the tokens:
training rows are full) and its weight's share.
"""

from __future__ import annotations

import json

from absl import app, flags

from transformer_jax.data import mixture, sources, tokenizer

_BATCHES = flags.DEFINE_integer("batches", 500, "batches to count")
_WEIGHTS = flags.DEFINE_list("weights", ["2", "1", "1"], "one weight per source")


class _Letters:
    """A TextSource of documents made of one letter."""

    split = "train"

    def __init__(self, letter: str):
        self.name, self.fingerprint, self.letter = letter, letter, letter

    def __len__(self) -> int:
        return 200

    def __getitem__(self, i: int) -> str:
        return " ".join(self.letter * (1 + (i * 7 + j) % 5) for j in range(5 + i % 40))


def main(argv):
    del argv
    tok = tokenizer.load_or_train(sources.StdlibSource("train"), 8192)
    weights = [float(w) for w in _WEIGHTS.value]
    letters = "abcdefgh"[:len(weights)]
    parts = [(x, _Letters(x), w) for x, w in zip(letters, weights, strict=True)]
    it = iter(mixture.mixture_dataset(parts, tok, seq_len=64, batch_size=16, seed=0,
                                      num_shards=2))
    counts = dict.fromkeys(letters, 0)
    for _ in range(_BATCHES.value):
        for row in next(it)["inputs"]:
            ids = [int(t) for t in row if t not in (tok.bos_id, tok.eos_id, 0)]
            (letter,) = set(tok.decode(ids)) - set(" \n")
            counts[letter] += 1
    it.close()
    rows = sum(counts.values())
    for letter, w in zip(letters, weights, strict=True):
        print(json.dumps({"source": letter, "weight_share": w / sum(weights),
                          "observed_share": counts[letter] / rows, "rows": counts[letter]}))


if __name__ == "__main__":
    app.run(main)
