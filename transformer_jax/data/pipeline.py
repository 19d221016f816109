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
from collections.abc import Iterator

import grain
import numpy as np

from transformer_jax.data.sources import TextSource
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.errors import UserError

BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions")
# Documents tokenized ahead of packing; enough to keep several batches of short documents.
_TOKENIZE_AHEAD = 64
_TOKENIZE_THREADS = 2
_BATCHES_AHEAD = 2


class _Tokenize(grain.transforms.Map):
    """Document -> {"inputs": int32 [n], "targets": int32 [n]}, n = len(tokens) + 1."""

    def __init__(self, tokenizer: Tokenizer):
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


def _pack_and_batch(
    documents: grain.MapDataset, seq_len: int, batch_size: int, drop_remainder: bool
) -> grain.IterDataset:
    """Tokenized documents -> batches of packed rows (see the module docstring)."""
    tokenized = documents.to_iter_dataset(
        grain.ReadOptions(num_threads=_TOKENIZE_THREADS, prefetch_buffer_size=_TOKENIZE_AHEAD)
    )
    rows = _JsonSafeState(
        grain.experimental.ConcatThenSplitIterDataset(
            tokenized, length_struct={"inputs": seq_len, "targets": seq_len}
        )
    )
    batches = rows.map(_batch_keys).batch(batch_size, drop_remainder=drop_remainder)
    return grain.experimental.ThreadPrefetchIterDataset(
        batches, prefetch_buffer_size=_BATCHES_AHEAD
    )


def _check_shapes(seq_len: int, batch_size: int, process_index: int, process_count: int):
    if seq_len < 1 or batch_size < 1:
        raise UserError(f"seq_len={seq_len} and batch_size={batch_size} must both be >= 1")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")


def _this_process_rows(
    documents: grain.MapDataset, seq_len: int, batch_size: int, process_index: int,
    process_count: int, drop_remainder: bool,
) -> grain.IterDataset:
    """Tokenized documents -> this process's rows of every global batch.

    Every process packs the same global stream into global batches of
    batch_size * process_count rows and keeps rows [p * batch_size, (p + 1) * batch_size):
    the block of the global array that `make_array_from_process_local_data` takes from
    process p. So each step's global batch, and the iterator state (that of the global
    stream, equal on all processes), do not depend on process_count: N processes train on
    exactly the batches of 1 process, and a checkpoint of either resumes the other's data
    order. The price is that every process tokenizes every document (a few M tokens/s per
    thread, far more than one host trains on, unless there are very many hosts).
    """
    global_batches = _pack_and_batch(documents, seq_len, batch_size * process_count,
                                     drop_remainder)
    mine = slice(process_index * batch_size, (process_index + 1) * batch_size)
    return global_batches.map(lambda batch: {key: rows[mine] for key, rows in batch.items()})


def lm_dataset(
    source: TextSource,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    repeat: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Training batches: documents shuffled, packed, batched; this process's rows of each.

    Args:
      source: documents.
      tokenizer: turns each document d into [bos] + encode(d) + [eos].
      seq_len: row length.
      batch_size: rows per batch on this process.
      seed: shuffle seed in [0, 2**32); each epoch is shuffled differently.
      shuffle: shuffle document order.
      repeat: cycle forever (training) instead of one pass.
      process_index: this process's number; it yields rows [process_index * batch_size,
        (process_index + 1) * batch_size) of each global batch of the stream that every
        process packs alike, so the global batches do not depend on process_count.
      process_count: number of processes.
      drop_remainder: drop a final global batch with fewer than batch_size * process_count
        rows (one pass only); if kept, a process's share of it may be short, even empty.

    Returns:
      An `IterDataset` of dicts with int32 [batch_size, seq_len] arrays `inputs`, `targets`,
      `segment_ids`, `positions`. Its iterators' `get_state()`/`set_state()` resume exactly,
      and the state is the same on every process and for every process_count.
    """
    _check_shapes(seq_len, batch_size, process_index, process_count)
    documents = grain.MapDataset.source(source)
    if not len(documents):
        raise UserError(f"{source.name} {source.split} split has no documents")
    if shuffle:
        documents = documents.shuffle(seed=seed)
    if repeat:
        documents = documents.repeat()
    return _this_process_rows(documents.map(_Tokenize(tokenizer)), seq_len, batch_size,
                              process_index, process_count, drop_remainder)


def lm_eval_batches(
    source: TextSource,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    batch_size: int,
    max_batches: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluation batches: one deterministic pass in source order, padded, equal per process.

    Rows are split between processes as in `lm_dataset`, so all processes yield the same
    number of batches (a jitted step over a global array needs every process to join each
    call) and the rows evaluated do not depend on process_count. Rows past the end are all
    zeros (segment_ids 0, to be ignored).

    Args:
      source: documents.
      tokenizer: as in `lm_dataset`.
      seq_len: row length.
      batch_size: rows per batch on this process.
      max_batches: stop after this many batches; None = the whole source.
      process_index: this process's number.
      process_count: number of processes.

    Yields:
      Dicts of int32 [batch_size, seq_len] arrays, keys as in `lm_dataset`.
    """
    _check_shapes(seq_len, batch_size, process_index, process_count)
    documents = grain.MapDataset.source(source).map(_Tokenize(tokenizer))
    iterator = iter(_this_process_rows(documents, seq_len, batch_size, process_index,
                                       process_count, drop_remainder=False))
    try:
        for batch in itertools.islice(iterator, max_batches):
            padded = {}
            for key in BATCH_KEYS:
                rows = batch[key]
                padded[key] = np.zeros((batch_size, seq_len), dtype=np.int32)
                padded[key][: len(rows)] = rows
            yield padded
    finally:
        # Stops the prefetch threads now, also when the caller leaves the loop early.
        iterator.close()
