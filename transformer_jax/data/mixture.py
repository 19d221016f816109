"""Language-modeling data mixtures: several text sources, weighted, in one resumable stream.

`config.data.mixture` maps a source name to that source's keys (those of
`sources.make_source`: `source`, `path`, `tfds_name`, ...) and a `weight`:

    data.mixture = {"code": {"source": "stdlib", "weight": 3},
                    "notes": {"source": "local", "path": "notes/", "weight": 1}}

Training (`mixture_dataset`): each source's documents are shuffled, tokenized and packed into
rows on their own (rows never mix sources), then Grain's `IterDataset.mix` interleaves the
sources' rows in the weights' proportions (a fixed, deterministic schedule: of every
sum-of-weights rows, each source gives its weight's share), and the mixed rows are batched. The
proportions are proportions of training tokens, since packed training rows are full. The
iterator state holds every source's packing state by name and the mix position, so a resumed
run sees exactly the batches of a straight run.

Evaluation (`mixture_eval_batches`): each source's validation split is packed on its own and
the sources' batches are taken in turn (source 0, 1, ..., 0, 1, ...; a finished source drops
out), so a bounded evaluation covers every source; each row carries its source's number in
`source` [B] for per-source metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator

import grain
import ml_collections
import numpy as np

from transformer_jax.data import lm_pipeline, sources
from transformer_jax.data.splits import SPLITS, TextSource
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

# The keys of one mixture entry besides `weight`: what `sources.make_source` reads.
SOURCE_KEYS = ("source", "path", "tfds_name", "tfds_data_dir", "text_key",
               "validation_fraction", "validation_path")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclasses.dataclass(frozen=True)
class MixtureSource:
    """One entry of `data.mixture`: its name, its `make_source` keys and its weight."""

    name: str
    config: ml_collections.ConfigDict
    weight: float

    def make(self, split: str) -> TextSource:
        """This source's `split` (UserError when it is empty)."""
        source = sources.make_source(self.config, split)
        if not len(source):
            raise UserError(f"data.mixture.{self.name}: its {split!r} split has no documents; "
                            "point it at data or drop it from the mixture")
        return source


def parse(data_cfg: ml_collections.ConfigDict) -> list[MixtureSource]:
    """The entries of `data_cfg.mixture`, checked ([] when there is no mixture).

    An entry's `validation_fraction` and `text_key` default to the data section's.
    Raises UserError (one line) for a name that is not [A-Za-z0-9_-]+, an unknown key, a
    missing or non-positive weight.
    """
    mixture = data_cfg.get("mixture") or {}
    out = []
    for name, entry in mixture.items():
        where = f"data.mixture.{name}"
        if not _NAME.match(name):
            raise UserError(f"{where}: a source name is letters, digits, '_' or '-' (it names "
                            "its eval metrics); rename it")
        if not isinstance(entry, (dict, ml_collections.ConfigDict)):
            raise UserError(f"{where}={entry!r}: give a dict of source keys and a weight")
        for key in entry:
            if key != "weight" and key not in SOURCE_KEYS:
                raise UserError(f"{where}.{key} is not a source key; use weight and any of "
                                f"{', '.join(SOURCE_KEYS)}")
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise UserError(f"{where}.weight={weight!r}: give every source a weight > 0 "
                            "(relative; they need not sum to 1)")
        config = ml_collections.ConfigDict({
            "validation_fraction": data_cfg.get("validation_fraction", 0.02),
            "text_key": data_cfg.get("text_key", "text"),
            **{k: v for k, v in entry.items() if k != "weight"},
        })
        out.append(MixtureSource(name, config, float(weight)))
    return out


def check_splits(mixture: list[MixtureSource]) -> None:
    """UserError (one line) when a split of some source is empty."""
    for entry in mixture:
        for split in SPLITS:
            entry.make(split)


class ConcatSource:
    """The train splits of all sources one after another: what the tokenizer trains on."""

    split = "train"

    def __init__(self, mixture: list[MixtureSource]):
        self._parts = [entry.make("train") for entry in mixture]
        self._starts = np.cumsum([0] + [len(p) for p in self._parts])
        self.name = "mixture-" + "-".join(entry.name for entry in mixture)
        digest = hashlib.sha256()
        for entry, part in zip(mixture, self._parts, strict=True):
            digest.update(f"{entry.name}\0{part.name}\0{part.fingerprint}\n".encode())
        self.fingerprint = digest.hexdigest()[:16]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> str:
        index = range(len(self))[index]
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self._parts[part][index - int(self._starts[part])]


def mixture_dataset(
    parts: list[tuple[str, TextSource, float]],
    tokenizer: TextTokenizer,
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    num_shards: int | None = None,
) -> lm_pipeline.ShardedBatches:
    """Training batches of a mixture, forever (see the module docstring).

    Sharded as `lm_pipeline.lm_dataset`: each virtual shard takes every V-th document of
    every source and mixes its own rows, so the global batches depend on V, not on the
    process count.

    Args:
      parts: (name, train source, weight) per source.
      tokenizer: as in `lm_pipeline.lm_dataset`.
      seq_len: row length.
      batch_size: rows per batch on this process.
      seed: shuffle seed; source k shuffles with seed + k.
      process_index, process_count, num_shards: as in `lm_pipeline.lm_dataset`.

    Returns:
      An iterable of batches as `lm_pipeline.lm_dataset`'s, whose iterators' state holds
      each shard's mix position and every source's packing state by name.
    """
    num_shards = num_shards or process_count
    lm_pipeline.check_shapes(seq_len, batch_size, process_index, process_count, num_shards)
    documents = {}
    for k, (name, source, _) in enumerate(parts):
        docs = grain.MapDataset.source(source)
        if not len(docs):
            raise UserError(f"data.mixture.{name}: {source.split} split has no documents")
        documents[name] = docs.shuffle(seed=(seed + k) % 2**32).repeat()
    weights = {name: weight for name, _, weight in parts}
    rows_per_shard = batch_size * process_count // num_shards

    def make_shard(shard: int) -> grain.IterDataset:
        rows = {name: lm_pipeline.pack_rows(
            docs[shard::num_shards].map(lm_pipeline.Tokenize(tokenizer)), seq_len)
            for name, docs in documents.items()}
        return lm_pipeline.batch_rows(grain.IterDataset.mix(rows, weights), rows_per_shard,
                                      drop_remainder=True)

    return lm_pipeline.ShardedBatches(
        make_shard, lm_pipeline.my_shards(num_shards, process_index, process_count),
        num_shards, rows_per_shard)


def mixture_eval_batches(
    parts: list[tuple[str, TextSource]],
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
    """Evaluation batches of every source's split, the sources in turn (module docstring).

    Each batch is one source's `lm_pipeline.lm_eval_batches` batch plus `source`, int32 [B]:
    the source's position in `parts`. Every process yields the same batches' count, as
    `lm_eval_batches` does per source.
    """
    streams = [
        (k, lm_pipeline.lm_eval_batches(
            source, tokenizer, seq_len=seq_len, batch_size=batch_size, max_batches=max_batches,
            process_index=process_index, process_count=process_count, num_shards=num_shards,
            any_process=any_process))
        for k, (_, source) in enumerate(parts)
    ]
    live = list(streams)
    try:
        for _ in itertools.islice(itertools.count(), max_batches):
            batch = None
            while live and batch is None:
                k, stream = live.pop(0)
                batch = next(stream, None)
                if batch is not None:
                    live.append((k, stream))
            if batch is None:
                return
            yield {**batch, "source": np.full((batch_size,), k, np.int32)}
    finally:
        for _, stream in streams:
            stream.close()
