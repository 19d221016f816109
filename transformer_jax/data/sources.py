"""Text sources: random-access sequences of documents that Grain can read.

A source has `__len__` and `__getitem__(i) -> str` (what `grain.MapDataset.source` needs), a
`split` ("train" or "validation"), a `name` and a `fingerprint` (together the tokenizer-cache
key). Three kinds:

- `StdlibSource`: the running Python's standard library, a 30 MB offline default corpus;
- `LocalSource`: text files, directories of them, or JSON-lines files;
- `TfdsSource` (in tfds_source.py): a prepared TFDS dataset read through array_record.

File sources assign each document to a split by a stable hash of its key, so the split never
depends on file order, machine or process (a corpus the hash leaves a split empty for, such as
one file, is split by position instead: see position_split.py); they index files eagerly (one read,
~0.3 s for the stdlib) so that bad files are found and counted once, up front, and keep only
byte offsets in memory, reading each document back on demand.
"""

import hashlib
import json
import os
import pathlib
import sys
import sysconfig

import ml_collections
import numpy as np
from absl import logging

from transformer_jax.data.chunking import MAX_DOC_CHARS, split_text
from transformer_jax.data.position_split import split_by_position
from transformer_jax.data.splits import SPLITS, TextSource, check_split, split_of
from transformer_jax.data.tfds_source import TfdsSource
from transformer_jax.errors import UserError

__all__ = [
    "FileSource",
    "LocalSource",
    "StdlibSource",
    "TextSource",
    "TfdsSource",
    "check_splits",
    "make_source",
    "split_of",
    "stdlib_files",
]

# Corpora whose non-text files (whose split by position) were already reported in this process.
_warned_not_text: set[str] = set()
_warned_position: set[str] = set()


def stdlib_files() -> list[pathlib.Path]:
    """Returns the running Python's standard library `.py` files, sorted.

    Third-party packages installed inside the stdlib tree (`site-packages`, `dist-packages`) are
    left out: they differ between machines, and the corpus should not.
    """
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages")]
        files.extend(pathlib.Path(dirpath, f) for f in filenames if f.endswith(".py"))
    return sorted(files)


class FileSource:
    """Documents from files: plain text (one document per file) or `.jsonl` (one per line).

    Sized for corpora up to a few million documents (the index costs ~40 bytes a document);
    prepare bigger ones as a TFDS dataset. Files that are not UTF-8 text (failing strict
    decoding, or containing NUL bytes) are skipped with one counted warning (once per process
    and corpus); documents longer than `max_doc_chars` are split into chunks at line
    boundaries (all chunks of a file stay in the same split).
    """

    def __init__(
        self,
        files: list[tuple[pathlib.Path, str]],
        *,
        name: str,
        fingerprint: str,
        where: str,
        split: str,
        validation_fraction: float,
        jsonl_key: str,
        max_doc_chars: int,
        whole: bool = False,
    ):
        """Indexes `files`, keeping the documents of `split`.

        Args:
          files: (path, key) pairs; the key (a relative path) decides the split.
          name: cache-key name of the corpus, e.g. "stdlib".
          fingerprint: a string that changes when the corpus changes.
          where: how to name the corpus in messages (the path the user gave).
          split: "train" or "validation".
          validation_fraction: share of documents held out for "validation".
          jsonl_key: the field holding the text in `.jsonl` lines.
          max_doc_chars: longer documents are split into chunks of at most this many chars.
          whole: every document is in `split` (files given for that split alone).
        """
        check_split(split, validation_fraction)
        self.name, self.fingerprint, self.split = name, fingerprint, split
        self._files = [path for path, _ in files]
        self._jsonl_key = jsonl_key
        # Per document: file number, byte span in the file, char span in a JSON line's text.
        rows: list[tuple[int, int, int, int, int]] = []
        held_out: list[bool] = []  # per row: its key's hash puts it in validation
        total_docs = not_text = empty = 0
        for file_number, (path, key) in enumerate(files):
            try:
                data = path.read_bytes()
            except OSError as e:
                raise UserError(
                    f"cannot read {path} ({e.strerror}); fix its permissions or leave it out"
                ) from e
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                not_text += 1
                continue
            if "\x00" in text:
                not_text += 1
                continue
            if not text:
                empty += 1
                continue
            if path.suffix == ".jsonl":
                docs = self._index_jsonl(path, key, data, max_doc_chars)
            else:
                spans = _byte_chunks(text, max_doc_chars)
                docs = [(key, start, end, 0, -1) for start, end in spans]
            total_docs += len(docs)
            for doc_key, *span in docs:
                rows.append((file_number, *span))
                held_out.append(split_of(doc_key, validation_fraction) == "validation")
        if not_text and where not in _warned_not_text:
            _warned_not_text.add(where)  # each split and evaluation re-indexes the same files
            logging.warning(
                "skipped %d of %d files under %s: not UTF-8 text (binary or another encoding)",
                not_text, len(files), where,
            )
        if not total_docs:
            raise UserError(
                f"no text in {where}: {len(files)} files, {not_text} not UTF-8, {empty} empty; "
                "point the data path at UTF-8 text files"
            )
        if whole:
            pass
        elif validation_fraction > 0 and (all(held_out) or not any(held_out)):
            if where not in _warned_position:
                _warned_position.add(where)
                logging.warning(
                    "%s: %d document(s), too few to split by document; the last %g of its text "
                    "is validation (or set data.validation_path)", where, total_docs,
                    validation_fraction)
            rows = split_by_position(rows, validation_fraction, self._read_bytes)[split]
        else:
            rows = [r for r, v in zip(rows, held_out, strict=True) if v == (split == "validation")]
        if not rows:
            raise UserError(
                f"split {split!r} of {where} is empty ({total_docs} documents, "
                f"validation_fraction={validation_fraction}); add documents or change "
                "validation_fraction"
            )
        table = np.asarray(rows, dtype=np.int64)
        self._file_number = table[:, 0]
        self._byte_spans = table[:, 1:3]
        self._char_spans = table[:, 3:5]

    def _index_jsonl(
        self, path: pathlib.Path, key: str, data: bytes, max_doc_chars: int
    ) -> list[tuple[str, int, int, int, int]]:
        """Returns (key, byte start, byte end, char start, char end) per chunk of each line."""
        docs = []
        start = 0
        for line_number, line in enumerate(data.split(b"\n"), 1):
            end = start + len(line)
            if line.strip():
                text = self._jsonl_text(line, f"{path}:{line_number}")
                for lo, hi in _char_chunks(text, max_doc_chars):
                    docs.append((f"{key}:{line_number}", start, end, lo, hi))
            start = end + 1
        return docs

    def _jsonl_text(self, line: bytes, where: str) -> str:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e}); write one JSON object per line") from e
        if not isinstance(record, dict) or not isinstance(record.get(self._jsonl_key), str):
            fields = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise UserError(
                f"{where}: no string field {self._jsonl_key!r} (found {fields}); "
                "set data.text_key to the field holding the text"
            )
        return record[self._jsonl_key]

    def _read_bytes(self, row: tuple[int, int, int, int, int]) -> bytes:
        """The bytes of a document row's byte span."""
        file_number, start, end = row[:3]
        with open(self._files[file_number], "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def __len__(self) -> int:
        return len(self._file_number)

    def __getitem__(self, index: int) -> str:
        index = range(len(self))[index]  # Sequence semantics: negatives, IndexError.
        path = self._files[self._file_number[index]]
        start, end = self._byte_spans[index]
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read(end - start).decode("utf-8")
        if path.suffix == ".jsonl":
            lo, hi = self._char_spans[index]
            text = json.loads(text)[self._jsonl_key][lo:hi]
        return text


def _char_chunks(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Character spans of `split_text(text, max_chars)`."""
    spans, start = [], 0
    for piece in split_text(text, max_chars):
        spans.append((start, start + len(piece)))
        start += len(piece)
    return spans


def _byte_chunks(text: str, max_chars: int) -> list[tuple[int, int]]:
    """UTF-8 byte spans of `split_text(text, max_chars)`, so a chunk is read back by offset."""
    spans, start = [], 0
    for piece in split_text(text, max_chars):
        size = len(piece.encode("utf-8"))
        spans.append((start, start + size))
        start += size
    return spans


class StdlibSource(FileSource):
    """The running Python's standard library source files: the offline default corpus."""

    def __init__(
        self, split: str, validation_fraction: float = 0.02, max_doc_chars: int = MAX_DOC_CHARS
    ):
        """See `FileSource`; documents are whole `.py` files keyed by path under the stdlib."""
        root = pathlib.Path(sysconfig.get_paths()["stdlib"])
        files = stdlib_files()
        total_bytes = sum(path.stat().st_size for path in files)
        version = ".".join(map(str, sys.version_info[:3]))
        super().__init__(
            [(path, path.relative_to(root).as_posix()) for path in files],
            name="stdlib",
            fingerprint=(
                f"python{version}-{len(files)}files-{total_bytes}bytes-"
                f"val{validation_fraction}-max{max_doc_chars}"
            ),
            where=str(root),
            split=split,
            validation_fraction=validation_fraction,
            jsonl_key="text",
            max_doc_chars=max_doc_chars,
        )


class LocalSource(FileSource):
    """Local text: files, directories (recursive) and `.jsonl` files, comma-separated."""

    def __init__(
        self,
        path: str,
        split: str,
        validation_fraction: float = 0.02,
        jsonl_key: str = "text",
        max_doc_chars: int = MAX_DOC_CHARS,
        whole: bool = False,
    ):
        """See `FileSource`.

        Args:
          path: comma-separated files or directories. A directory contributes every regular
            file below it, except hidden ones (names starting with "."), like `.git`.
          split: "train" or "validation".
          validation_fraction: share of documents held out for "validation".
          jsonl_key: the field holding the text in `.jsonl` lines.
          max_doc_chars: longer documents are split into chunks of at most this many chars.
          whole: every document is in `split` (e.g. data.validation_path).
        """
        files = []
        for part in (p.strip() for p in path.split(",")):
            files.extend(_files_under(part))
        fingerprint = hashlib.sha256()
        for file, key in files:
            stat = file.stat()
            fingerprint.update(f"{key}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        fingerprint.update(f"val{validation_fraction}-max{max_doc_chars}-{jsonl_key}".encode())
        if whole:
            fingerprint.update(b"-whole")
        super().__init__(
            files,
            name="local",
            fingerprint=fingerprint.hexdigest()[:16],
            where=path,
            split=split,
            validation_fraction=validation_fraction,
            jsonl_key=jsonl_key,
            max_doc_chars=max_doc_chars,
            whole=whole,
        )


def _files_under(path: str) -> list[tuple[pathlib.Path, str]]:
    """(file, key) pairs for one user path; keys are paths relative to what the user named."""
    root = pathlib.Path(path).expanduser()
    if not path or not root.exists():
        raise UserError(f"data path {path!r} does not exist; give a file, directory or .jsonl")
    if root.is_file():
        return [(root, root.name)]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            file = pathlib.Path(dirpath, filename)
            if not filename.startswith(".") and file.is_file():
                files.append((file, file.relative_to(root).as_posix()))
    if not files:
        raise UserError(f"directory {path} has no files; put text files in it")
    return sorted(files, key=lambda pair: pair[1])


def make_source(data_cfg: ml_collections.ConfigDict, split: str) -> TextSource:
    """Builds the source that `data_cfg` describes.

    Args:
      data_cfg: `source` ("stdlib" | "local" | "tfds"), `path` (local), `tfds_name`,
        `tfds_data_dir`, `text_key`, `validation_fraction`, `validation_path` (local: a
        held-out file or directory; then all of `path` is train).
      split: "train" or "validation".

    Returns:
      A `TextSource`.
    """
    kind = data_cfg.get("source", "stdlib")
    validation_fraction = data_cfg.get("validation_fraction", 0.02)
    text_key = data_cfg.get("text_key", "text") or "text"
    if kind == "stdlib":
        return StdlibSource(split, validation_fraction=validation_fraction)
    if kind == "local":
        path = data_cfg.get("path")
        if not path:
            raise UserError("data.path is empty; set it to files, directories or .jsonl files")
        held_out = data_cfg.get("validation_path") or ""
        if held_out:
            return LocalSource(held_out if split == "validation" else path, split,
                               jsonl_key=text_key, whole=True)
        return LocalSource(
            path, split, validation_fraction=validation_fraction, jsonl_key=text_key
        )
    if kind == "tfds":
        name = data_cfg.get("tfds_name")
        if not name:
            raise UserError("data.tfds_name is empty; set it to a TFDS dataset name, e.g. lm1b")
        return TfdsSource(
            name, split, data_dir=data_cfg.get("tfds_data_dir") or None, text_key=text_key
        )
    raise UserError(f"data.source={kind!r} is unknown; use 'stdlib', 'local' or 'tfds'")


def check_splits(data_cfg: ml_collections.ConfigDict) -> None:
    """UserError (one line) when a split of a stdlib/local text source is empty: indexes
    each split once, so a run can fail before it writes anything."""
    if data_cfg.get("source", "stdlib") in ("stdlib", "local"):
        for split in SPLITS:
            make_source(data_cfg, split)
