"""Token-based batching for the encoder-decoder: length buckets, variable rows, fixed shapes.

"Attention Is All You Need" batches sentence pairs "by approximate sequence length", about
25k source and 25k target tokens per batch. Here each example goes to the bucket of its
(source, target) lengths, padded up to the bucket's shape (S_b, T_b); the bucket boundaries
double from 16 up to the maximum lengths (e.g. S_b in 16, 32, 64, 128 and T_b in 16, 32),
so XLA compiles at most one train program per bucket. A bucket's batch has

    rows_b = tokens_per_batch // max(S_b, T_b), rounded down to a multiple of `multiple`

rows (the data-parallel size times the gradient-accumulation steps), so neither side of a
batch exceeds `tokens_per_batch` token positions.

The order is a function of the seed alone. Epoch e shuffles each bucket's examples
(`numpy.random.default_rng([seed, e])`), cuts them into batches (a bucket's short last batch
is left out of that epoch; the next epoch's shuffle puts other examples there), groups each
bucket's batches into runs of `group` (the trainer's `steps_per_call`: the steps of one
jitted call are stacked, so they share a shape), and shuffles the runs. Every epoch has the
same number of batches, so global batch g is batch g mod L of epoch g // L; the state is
`{"batches": g}`, the same on every process, and resumes exactly on any process count whose
share of rows divides every bucket's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from transformer_jax.data import batching
from transformer_jax.errors import UserError

Example = batching.Example
_SMALLEST = 16
SOURCE_KEYS, TARGET_KEYS = ("source",), ("target_inputs", "targets")


def boundaries(max_len: int) -> list[int]:
    """Padded lengths 16, 32, 64, ... below `max_len`, then `max_len` itself."""
    out, length = [], _SMALLEST
    while length < max_len:
        out.append(length)
        length *= 2
    return [*out, max_len]


class TokenBatches(batching.GlobalBatches):
    """Bucketed training batches of about `tokens_per_batch` tokens a side, forever.

    Args:
      examples: `example(i)` -> {"source": [S], "target_inputs": [T], "targets": [T]}.
      lengths: [N, 2] int, each example's real source and target lengths (<= S, T).
      max_lengths: (S, T).
      tokens_per_batch: padded token positions per side of a batch, at most.
      multiple: every bucket's global rows are a multiple of this (data parallel x accum).
      group: consecutive batches from one bucket (the trainer's steps_per_call).
      seed: the order's seed.
      process_index, process_count: this process takes rows
        [p * rows_b / P, (p + 1) * rows_b / P) of each global batch.

    Yields:
      Dicts of [rows_b / P, S_b] `source` and [rows_b / P, T_b] `target_inputs`, `targets`.
    """

    def __init__(self, example: Callable[[int], Example], lengths: np.ndarray,
                 max_lengths: tuple[int, int], *, tokens_per_batch: int, multiple: int,
                 group: int = 1, seed: int = 0, process_index: int = 0,
                 process_count: int = 1):
        self._example, self._seed, self._group = example, seed, group
        self._process = (process_index, process_count)
        self.shapes = [(s, t) for s in boundaries(max_lengths[0])
                       for t in boundaries(max_lengths[1])]
        unit = int(np.lcm(multiple, process_count))
        self.rows = [tokens_per_batch // max(s, t) // unit * unit for s, t in self.shapes]
        if not self.rows[-1]:
            s, t = self.shapes[-1]
            raise UserError(
                f"data.tokens_per_batch={tokens_per_batch} fits no batch of the longest bucket "
                f"({s} source x {t} target tokens) in rows that are a multiple of {unit} (the "
                f"data-parallel size x grad_accum_steps): set it to at least {unit * max(s, t)}")
        lengths = np.asarray(lengths)
        s_bucket = np.searchsorted(boundaries(max_lengths[0]), lengths[:, 0])
        t_bucket = np.searchsorted(boundaries(max_lengths[1]), lengths[:, 1])
        bucket = s_bucket * len(boundaries(max_lengths[1])) + t_bucket
        self._members = [np.flatnonzero(bucket == b) for b in range(len(self.shapes))]
        self.batches_per_epoch = len(self._epoch(0))
        if not self.batches_per_epoch:
            raise UserError(
                f"data.tokens_per_batch={tokens_per_batch}: no bucket has {group} full "
                f"batch(es) of examples ({len(lengths)} examples); lower tokens_per_batch")

    @functools.lru_cache(maxsize=2)  # noqa: B019 (one instance per run; bounded)
    def _epoch(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        """Epoch `epoch`'s global batches: (bucket, example indices [rows_b])."""
        rng = np.random.default_rng([self._seed, epoch])
        runs = []
        for b, members in enumerate(self._members):
            rows = self.rows[b]
            if not rows:
                continue
            order = rng.permutation(members)
            batches = [order[i:i + rows] for i in range(0, len(order) - rows + 1, rows)]
            for i in range(0, len(batches) - self._group + 1, self._group):
                runs.append([(b, batch) for batch in batches[i:i + self._group]])
        return [batch for k in rng.permutation(len(runs)) for batch in runs[k]]

    def batch(self, g: int) -> Example:
        """This process's rows of global batch `g`, cut to its bucket's shape."""
        epoch, i = divmod(g, self.batches_per_epoch)
        b, indices = self._epoch(epoch)[i]
        index, count = self._process
        share = len(indices) // count
        s, t = self.shapes[b]
        rows = [self._example(int(j)) for j in indices[index * share:(index + 1) * share]]
        out = {key: np.stack([r[key][:s] for r in rows]) for key in SOURCE_KEYS}
        out |= {key: np.stack([r[key][:t] for r in rows]) for key in TARGET_KEYS}
        return out


def padding_fraction(batches: list[Example], pad_id: int = 0) -> float:
    """Pad token positions / all token positions of the batches, source and target sides
    (each target position counted once, as `targets`)."""
    pad = total = 0
    for batch in batches:
        for key in ("source", "targets"):
            pad += int(np.sum(batch[key] == pad_id))
            total += batch[key].size
    return pad / max(total, 1)
