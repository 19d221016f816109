"""Batches of fixed-shape examples where each process reads only its own rows.

For example-level tasks (classification, tagging, QA, MLM/NSP pairs, seq2seq pairs), unlike
the packed LM stream. Global batch g holds examples [g * G, (g + 1) * G) of the (shuffled,
repeated) example order, G = batch_size * process_count; process p builds only rows
[g * G + p * B, g * G + (p + 1) * B): the block of the global array that
`jax.make_array_from_process_local_data` takes from it. So every process reads and
featurizes only its share, the global batches do not depend on the process count, and the
iterator state (`{"batches": g}`, global batches consumed) is the same on every process: a
checkpoint resumes on any number of processes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np

from transformer_jax.errors import UserError

Example = dict[str, np.ndarray]
_READ_THREADS = 2
_BATCHES_AHEAD = 4


class GlobalBatches:
    """Global batch g is `batch(g)`, g = 0, 1, … `num_batches` - 1, read ahead by Grain
    threads; the state `{"batches": g}` (global batches consumed) is the same on every process.

    Subclasses set `num_batches` and define `batch(g)` -> this process's rows of batch g.
    """

    num_batches: int = sys.maxsize
    _next: int = 0
    _iterator: Iterator[Example] | None = None

    def batch(self, g: int) -> Example:
        """This process's rows of global batch `g`."""
        raise NotImplementedError

    def __iter__(self) -> GlobalBatches:
        return self

    def __next__(self) -> Example:
        if self._next >= self.num_batches:
            raise StopIteration
        if self._iterator is None:
            batches = grain.MapDataset.range(self._next, self.num_batches).map(self.batch)
            self._iterator = iter(batches.to_iter_dataset(grain.ReadOptions(
                num_threads=_READ_THREADS, prefetch_buffer_size=_BATCHES_AHEAD)))
        batch = next(self._iterator)
        self._next += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        """{"batches": global batches consumed}: the same on every process."""
        return {"batches": self._next}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continues after `state["batches"]` global batches (from any process count)."""
        self.close()
        self._next = int(state["batches"])

    def close(self) -> None:
        """Stops the read-ahead threads."""
        if self._iterator is not None:
            close: Callable[[], None] | None = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self._iterator = None


class ExampleBatches(GlobalBatches):
    """An iterator of this process's rows of each global batch, with JSON-able state.

    Args:
      examples: random-access examples, each a dict of numpy arrays with fixed shapes (the
        same keys and shapes for every example). Featurize lazily with `MapDataset.map` so
        only the rows this process needs are ever computed.
      batch_size: rows per batch on this process (the global batch / process_count).
      seed: shuffle seed; each epoch is shuffled differently.
      shuffle: shuffle the example order (training); False keeps source order (evaluation).
      repeat: cycle forever (training); False makes one pass, where the last global batch is
        filled up with padding rows (all-zero arrays, so a `weights`-style key is 0) and every
        process yields the same number of batches.
      process_index: this process's number in [0, process_count).
      process_count: number of processes.

    Yields:
      Dicts of [batch_size, ...] arrays.
    """

    def __init__(
        self,
        examples: grain.MapDataset,
        *,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        repeat: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} not in [0, {process_count})")
        self._num_examples = len(examples)
        if not self._num_examples:
            raise UserError("the dataset has no examples: check the data source and split")
        if shuffle:
            examples = examples.shuffle(seed=seed)
        if repeat:
            examples = examples.repeat()
        self._examples = examples
        self._template = examples[0]
        global_batch = batch_size * process_count
        self._first_row = process_index * batch_size
        self._batch_size, self._global_batch = batch_size, global_batch
        self._repeat = repeat
        self.num_batches = sys.maxsize if repeat else -(-self._num_examples // global_batch)
        self._next = 0
        self._iterator: Iterator[Example] | None = None

    def batch(self, g: int) -> Example:
        """This process's rows of global batch `g` (padding rows past a one-pass end)."""
        start = g * self._global_batch + self._first_row
        rows = [
            self._examples[i] if (self._repeat or i < self._num_examples) else None
            for i in range(start, start + self._batch_size)
        ]
        return {
            key: np.stack([row[key] if row is not None else np.zeros_like(value)
                           for row in rows])
            for key, value in self._template.items()
        }
