"""Grain pipelines for language modelling: tokenize documents, pack them into rows, batch.

Every batch is a dict of int32 numpy arrays of shape [batch_size, seq_len]:

  inputs       [bos] + tokens of a document, shifted: the model's input ids
  targets      tokens + [eos]: the next token of each input position
  segment_ids  1, 2, ... for the documents packed in a row, 0 for padding
  positions    position within its segment, restarting at 0 for each segment

Packing is Grain's `ConcatThenSplitIterDataset`: documents are concatenated and cut into rows
of seq_len; a document that does not fit is split, its rest starting the next row (at
position 0), so no token is dropped and attention masked by segment ids never crosses
documents. Inputs and targets are packed as two features of the same length, so they are cut
at the same points and every target stays aligned with its input.

Everything runs in this process (no worker processes: those need absl flags parsed): a few
threads tokenize ahead (SentencePiece releases the GIL) and one thread assembles batches
ahead; iterator state (`get_state`/`set_state`, or `grain.checkpoint`) resumes exactly.
"""

import itertools
from collections.abc import Callable, Iterator

import grain
import numpy as np

from transformer_jax.data.splits import TextSource
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions")
# Documents tokenized ahead of packing; enough to keep several batches of short documents.
_TOKENIZE_AHEAD = 64
_TOKENIZE_THREADS = 2
_BATCHES_AHEAD = 2


class Tokenize(grain.transforms.Map):
    """Document -> {"inputs": int32 [n], "targets": int32 [n]}, n = len(tokens) + 1."""

    def __init__(self, tokenizer: TextTokenizer):
        self._tokenizer = tokenizer

    def map(self, element: str) -> dict[str, np.ndarray]:
        tok = self._tokenizer
        ids = np.asarray([tok.bos_id, *tok.encode(element), tok.eos_id], dtype=np.int32)
        return {"inputs": ids[:-1], "targets": ids[1:]}


class _JsonSafeState(grain.IterDataset):
    """Passes ConcatThenSplit's elements through; makes its state survive a JSON round trip.

    `grain.checkpoint` saves iterator state as JSON, which turns ConcatThenSplit's
    `remainder_slices` (start, stop) tuples into lists. Its `set_state` (grain 0.2.18) compares
    them with the tuple sentinel (-1, -1), so a saved "no remainder" reads back as a remainder
    and the restored iterator yields wrong rows. Restoring tuples here fixes that.
    """

    def __iter__(self) -> grain.DatasetIterator:
        return _JsonSafeStateIterator(self._parent.__iter__())


class _JsonSafeStateIterator(grain.DatasetIterator):
    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._parent)

    def get_state(self) -> dict:
        return self._parent.get_state()

    def set_state(self, state: dict) -> None:
        slices = {key: tuple(span) for key, span in state["remainder_slices"].items()}
        self._parent.set_state({**state, "remainder_slices": slices})


def _batch_keys(row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Grain's packed names -> ours; targets' segment ids and positions equal the inputs'."""
    return {
        "inputs": row["inputs"],
        "targets": row["targets"],
        "segment_ids": row["inputs_segment_ids"],
        "positions": row["inputs_positions"],
    }


def pack_rows(documents: grain.MapDataset, seq_len: int) -> grain.IterDataset:
    """Tokenized documents -> packed rows, dicts of int32 [seq_len] `BATCH_KEYS` arrays."""
    tokenized = documents.to_iter_dataset(
        grain.ReadOptions(num_threads=_TOKENIZE_THREADS, prefetch_buffer_size=_TOKENIZE_AHEAD)
    )
    rows = _JsonSafeState(
        grain.experimental.ConcatThenSplitIterDataset(
            tokenized, length_struct={"inputs": seq_len, "targets": seq_len}
        )
    )
    return rows.map(_batch_keys)


def batch_rows(rows: grain.IterDataset, batch_size: int, drop_remainder: bool
               ) -> grain.IterDataset:
    """Packed rows -> batches of `batch_size` rows, assembled ahead on one thread."""
    batches = rows.batch(batch_size, drop_remainder=drop_remainder)
    return grain.experimental.ThreadPrefetchIterDataset(
        batches, prefetch_buffer_size=_BATCHES_AHEAD
    )


def _pack_and_batch(
    documents: grain.MapDataset, seq_len: int, batch_size: int, drop_remainder: bool
) -> grain.IterDataset:
    """Tokenized documents -> batches of packed rows (see the module docstring)."""
    return batch_rows(pack_rows(documents, seq_len), batch_size, drop_remainder)


def check_shapes(seq_len: int, batch_size: int, process_index: int, process_count: int,
                  num_shards: int) -> None:
    if seq_len < 1 or batch_size < 1:
        raise UserError(f"seq_len={seq_len} and batch_size={batch_size} must both be >= 1")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if num_shards % process_count or (batch_size * process_count) % num_shards:
        raise UserError(
            f"data.num_shards={num_shards} must be a multiple of the process count "
            f"{process_count} and divide the global batch {batch_size * process_count}"
        )


def my_shards(num_shards: int, process_index: int, process_count: int) -> range:
    per_process = num_shards // process_count
    return range(process_index * per_process, (process_index + 1) * per_process)


class ShardedBatches:
    """An iterable over this process's rows of each global batch, built from its shards.

    Global batch g is the concatenation over shards s = 0..V-1 of shard s's batch g (each
    G / V rows). Process p owns shards [p V / P, (p + 1) V / P), so its rows are exactly the
    block `jax.make_array_from_process_local_data` takes from it.
    """

    def __init__(self, make_shard, shards: range, num_shards: int, rows_per_shard: int):
        self._make_shard, self._shards, self._num_shards = make_shard, shards, num_shards
        self._rows = rows_per_shard

    def __iter__(self) -> "_ShardedIterator":
        return _ShardedIterator([iter(self._make_shard(s)) for s in self._shards],
                                self._shards, self._num_shards, self._rows)


class _ShardedIterator:
    """Concatenates its shards' batches; state = {"num_shards": V, "shards": {s: state}}.

    `get_state` holds this process's shards only; the checkpointer merges the processes'
    states into one (checkpoint.merge_process_states) and `set_state` takes its shards from
    a merged state, so a checkpoint resumes on any process count that divides V.
    """

    def __init__(self, iterators: list, shards: range, num_shards: int, rows_per_shard: int):
        self._iterators, self._shards, self._num_shards = iterators, shards, num_shards
        self._rows = rows_per_shard
        self.exhausted = [False] * len(iterators)

    def __iter__(self) -> "_ShardedIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = []
        for i, it in enumerate(self._iterators):
            try:
                parts.append(next(it))
            except StopIteration:
                self.exhausted[i] = True
                parts.append(None)
        if all(self.exhausted):
            raise StopIteration
        template = next(p for p in parts if p is not None)
        batch = {}
        for key, value in template.items():
            # A shard's short last batch (one pass) and a finished shard are zero-padded.
            blocks = np.zeros((len(parts), self._rows, *value.shape[1:]), value.dtype)
            for i, part in enumerate(parts):
                if part is not None:
                    blocks[i, : len(part[key])] = part[key]
            batch[key] = blocks.reshape(-1, *value.shape[1:])
        return batch

    def get_state(self) -> dict:
        return {"num_shards": self._num_shards,
                "shards": {str(s): it.get_state() for s, it in zip(self._shards,
                                                                    self._iterators,
                                                                    strict=True)}}

    def set_state(self, state: dict) -> None:
        if state.get("num_shards") != self._num_shards:
            raise UserError(
                f"the checkpoint's data stream has {state.get('num_shards')} shards but this "
                f"run has data.num_shards={self._num_shards}: set "
                f"--config.data.num_shards={state.get('num_shards')} (a multiple of the "
                "process count) to resume it"
            )
        for s, it in zip(self._shards, self._iterators, strict=True):
            it.set_state(state["shards"][str(s)])

    def close(self) -> None:
        for it in self._iterators:
            it.close()


def lm_dataset(
    source: TextSource,
    tokenizer: TextTokenizer,
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    repeat: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    num_shards: int | None = None,
    drop_remainder: bool = True,
) -> ShardedBatches:
    """Training batches: documents shuffled, split into shards, each packed and batched.

    The shuffled document stream is dealt round-robin into `num_shards` virtual shards
    (document i goes to shard i mod V); each shard is tokenized and packed on its own, and
    contributes G / V rows (G = batch_size * process_count) to every global batch. A process
    reads and tokenizes only the documents of its own V / P shards. The global batches
    depend on V but not on the process count, so N processes train on exactly the batches of
    1 process with the same V, and a checkpoint resumes on any process count dividing V.

    Args:
      source: documents.
      tokenizer: turns each document d into [bos] + encode(d) + [eos].
      seq_len: row length.
      batch_size: rows per batch on this process.
      seed: shuffle seed in [0, 2**32); each epoch is shuffled differently.
      shuffle: shuffle document order.
      repeat: cycle forever (training) instead of one pass.
      process_index: this process's number.
      process_count: number of processes.
      num_shards: V, a multiple of process_count dividing the global batch; default
        process_count.
      drop_remainder: drop a shard's final short batch (one pass only).

    Returns:
      An iterable whose iterators yield dicts of int32 [batch_size, seq_len] arrays `inputs`,
      `targets`, `segment_ids`, `positions`, with `get_state()`/`set_state()` that resume
      exactly (see `_ShardedIterator`).
    """
    num_shards = num_shards or process_count
    check_shapes(seq_len, batch_size, process_index, process_count, num_shards)
    documents = grain.MapDataset.source(source)
    if not len(documents):
        raise UserError(f"{source.name} {source.split} split has no documents")
    if shuffle:
        documents = documents.shuffle(seed=seed)
    if repeat:
        documents = documents.repeat()
    rows_per_shard = batch_size * process_count // num_shards

    def make_shard(shard: int) -> grain.IterDataset:
        return _pack_and_batch(documents[shard::num_shards].map(Tokenize(tokenizer)), seq_len,
                               rows_per_shard, drop_remainder)

    return ShardedBatches(make_shard, my_shards(num_shards, process_index, process_count),
                           num_shards, rows_per_shard)


def lm_eval_batches(
    source: TextSource,
    tokenizer: TextTokenizer,
    *,
    seq_len: int,
    batch_size: int,
    max_batches: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    num_shards: int | None = None,
    any_process: Callable[[bool], bool] = bool,
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluation batches: one deterministic pass in source order, sharded as `lm_dataset`.

    Each process packs only its shards' documents. A shard that runs out contributes
    all-zero rows (segment_ids 0, to be ignored) until every shard of every process has
    run out, so all processes yield the same number of batches (a jitted step over a global
    array needs every process to join each call); the rows evaluated depend on num_shards,
    not on the process count.

    Args:
      source: documents.
      tokenizer: as in `lm_dataset`.
      seq_len: row length.
      batch_size: rows per batch on this process.
      max_batches: stop after this many batches; None = the whole source.
      process_index: this process's number.
      process_count: number of processes.
      num_shards: as in `lm_dataset`.
      any_process: maps "this process has rows left" to "some process has"; with several
        processes pass `distributed.any_process` (a tiny collective per batch).

    Yields:
      Dicts of int32 [batch_size, seq_len] arrays, keys as in `lm_dataset`.
    """
    num_shards = num_shards or process_count
    check_shapes(seq_len, batch_size, process_index, process_count, num_shards)
    documents = grain.MapDataset.source(source).map(Tokenize(tokenizer))
    rows_per_shard = batch_size * process_count // num_shards
    iterator = iter(ShardedBatches(
        lambda shard: _pack_and_batch(documents[shard::num_shards], seq_len, rows_per_shard,
                                      drop_remainder=False),
        my_shards(num_shards, process_index, process_count), num_shards, rows_per_shard,
    ))
    zeros = {key: np.zeros((batch_size, seq_len), np.int32) for key in BATCH_KEYS}
    try:
        for _ in itertools.islice(itertools.count(), max_batches):
            batch = next(iterator, None)
            if not any_process(batch is not None):
                return
            padded = {}
            for key in BATCH_KEYS:
                padded[key] = zeros[key].copy()
                if batch is not None:
                    padded[key][: len(batch[key])] = batch[key]
            yield padded
    finally:
        # Stops the prefetch threads now, also when the caller leaves the loop early.
        iterator.close()
