"""Sequence-classification data: (text, optional text_b, label) records and their features.

Sources (`data.source`):
- `stdlib`: the offline default, a 20-way topic task: "which standard-library package does
  this docstring come from" (module/class/function docstrings of the 20 top-level
  packages/modules with the most docstrings, test suites left out), stratified: each topic
  holds out about `validation_fraction` of its docstrings in whole files (in a one-file
  topic such as the `turtle` module, whole top-level definitions), chosen in a stable hash order.
- `local`: a CSV/TSV/JSONL file with text (+ text_b) + label columns, split by a hash of each
  row's text unless `data.validation_path` names a separate file; or a folder-per-label
  directory (`DIR/<label>/*.txt`), split by a hash of each file's path.
- `tfds`: `glue/sst2`, `glue/mrpc`, `imdb_reviews`, `ag_news_subset` (or any dataset with a
  ClassLabel), read through array_record without TensorFlow.

Features: `[CLS] text [SEP]` or `[CLS] text [SEP] text_b [SEP]` (longest-first truncation).
"""

from __future__ import annotations

import ast
import collections
import csv
import functools
import hashlib
import json
import pathlib
import sysconfig
from typing import NamedTuple

import ml_collections
import numpy as np

from transformer_jax.data import sources, tfds_source
from transformer_jax.data.bert_pretrain import truncate_pair
from transformer_jax.data.splits import check_split, split_of, stratified_split
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

STDLIB_TOPICS = 20
# TFDS datasets with known columns: (text, text_b or "", label).
TFDS_COLUMNS = {
    "glue/sst2": ("sentence", "", "label"),
    "glue/mrpc": ("sentence1", "sentence2", "label"),
    "imdb_reviews": ("text", "", "label"),
    "ag_news_subset": ("description", "", "label"),
}


class Record(NamedTuple):
    """One example: text, second text ("" for single sentences), label name."""

    text: str
    text_b: str
    label: str


class Records:
    """The records of one split plus the task's label names (a random-access sequence).

    Attributes:
      records: list of `Record`.
      labels: the label names, in class-id order (fixed by the train split or the dataset).
      name, fingerprint, split: as for a `TextSource` (the records' texts are its documents).
    """

    def __init__(self, records: list[Record], labels: list[str], name: str, where: str,
                 split: str):
        if not records:
            raise UserError(f"split {split!r} of {where} has no examples; add rows or check "
                            "data.validation_fraction")
        self.records, self.labels, self.split, self.where = records, labels, split, where
        self.name = name
        digest = hashlib.sha256()
        for record in records:
            digest.update("\0".join(record).encode("utf-8"))
        self.fingerprint = digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> str:
        """The text (and text_b) of record `index`, for tokenizer training."""
        record = self.records[index]
        return f"{record.text}\n{record.text_b}" if record.text_b else record.text

    def label_id(self, label: str) -> int:
        """Class id of `label`; UserError for a label outside the label set."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise UserError(
                f"{self.where}: label {label!r} is not in the label set {self.labels} "
                "(taken from the training data); fix the row or retrain with it"
            ) from None


def make_records(data: ml_collections.ConfigDict, split: str,
                 labels: list[str] | None = None) -> Records:
    """The records of `split` for the config's `data` section.

    Args:
      data: `source`, `path`, `validation_path`, `tfds_name`, `tfds_data_dir`, `text_key`,
        `text_b_key`, `label_key`, `validation_fraction`.
      split: "train" or "validation".
      labels: the label set (e.g. from a checkpoint); None derives it from the train split.

    Returns:
      `Records`.
    """
    check_split(split, data.validation_fraction)
    kind = data.source
    if kind == "stdlib":
        rows, all_labels, _ = _stdlib_docstrings(data.validation_fraction)
        records, where = rows[split], "stdlib docstrings"
    elif kind == "tfds":
        return _tfds_records(data, split)
    elif kind == "local":
        if not data.path:
            raise UserError("data.path is empty; set it to a CSV/TSV/JSONL file or a "
                            "folder-per-label directory")
        separate = bool(data.validation_path)  # else: a hash split of data.path
        path = data.validation_path if separate and split == "validation" else data.path
        rows = _read_local(pathlib.Path(path).expanduser(), data)
        if not separate:
            rows = [(r, k) for r, k in rows if split_of(k, data.validation_fraction) == split]
        records, where = [r for r, _ in rows], path
        all_labels = None
    else:
        raise UserError(f"data.source={kind!r} is unknown; use 'stdlib', 'local' or 'tfds'")
    if labels is None:
        labels = all_labels or (sorted({r.label for r in records}) if split == "train" else
                                make_records(data, "train").labels)
    result = Records(records, list(labels), kind, where, split)
    for record in records:
        result.label_id(record.label)
    return result


@functools.cache
def _stdlib_docstrings(validation_fraction: float
                       ) -> tuple[dict[str, list[Record]], list[str], dict[str, str]]:
    """Docstrings of the stdlib's 20 biggest top-level packages/modules, per split (~20 s).

    Returns:
      (split -> records, the label names, split unit -> split). A unit is a file path
      relative to the stdlib, or `path::name` (a top-level definition) in a one-file topic;
      each topic holds out about `validation_fraction` of its docstrings, in whole units.
    """
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    found: list[tuple[str, str, str, str]] = []  # (docstring, topic, file key, part)
    for path in sources.stdlib_files():
        key = path.relative_to(root).as_posix()
        topic = key.split("/")[0].removesuffix(".py")
        if {"test", "tests", "idle_test"} & set(key.split("/")[:-1]):
            continue  # test suites describe other packages, not their own topic
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue  # the stdlib ships a few deliberately broken test files
        # The module docstring, then each top-level statement's docstrings (its "part").
        module_doc = ast.get_docstring(tree)
        if module_doc and module_doc.strip():
            found.append((module_doc.strip(), topic, key, ""))
        for statement in tree.body:
            for node in ast.walk(statement):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and doc.strip():
                        found.append((doc.strip(), topic, key, getattr(statement, "name",
                                                                        str(statement.lineno))))
    counts = collections.Counter(topic for _, topic, _, _ in found)
    labels = sorted(t for t, _ in counts.most_common(STDLIB_TOPICS))
    found = [row for row in found if row[1] in labels]
    # Split unit: the file; in a one-file topic (e.g. `turtle`), its top-level definitions.
    files = collections.defaultdict(set)
    for _, topic, key, _ in found:
        files[topic].add(key)
    groups = [key if len(files[topic]) > 1 else f"{key}::{part}"
              for _, topic, key, part in found]
    split = stratified_split([(row[1], g) for row, g in zip(found, groups, strict=True)],
                             validation_fraction)
    rows: dict[str, list[Record]] = {"train": [], "validation": []}
    for (doc, topic, _, _), group in zip(found, groups, strict=True):
        rows[split[group]].append(Record(doc, "", topic))
    return rows, labels, split


def _read_local(path: pathlib.Path, data: ml_collections.ConfigDict
                ) -> list[tuple[Record, str]]:
    """(record, split key) pairs of a CSV/TSV/JSONL file or a folder-per-label directory."""
    if not path.exists():
        raise UserError(f"data path {str(path)!r} does not exist; give a CSV/TSV/JSONL file "
                        "or a folder-per-label directory")
    if path.is_dir():
        rows = []
        for file in sorted(path.glob("*/*.txt")):
            text = file.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                key = file.relative_to(path).as_posix()
                rows.append((Record(text, "", file.parent.name), key))
        if not rows:
            raise UserError(f"{path} has no <label>/*.txt files with text; put each class's "
                            ".txt files in a folder named after the label")
        return rows
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise UserError(f"{path} is empty; it needs a header row (or JSON lines) with "
                        f"{data.text_key!r} and {data.label_key!r}")
    if path.suffix == ".jsonl":
        table = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    table.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{number}: not valid JSON ({e})") from e
    elif path.suffix in (".csv", ".tsv"):
        table = list(csv.DictReader(text.splitlines(),
                                    delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise UserError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv or .jsonl "
                        "or a folder-per-label directory")
    rows = []
    for number, row in enumerate(table, 1):
        for key in (data.text_key, data.label_key, data.text_b_key):
            if key and (not isinstance(row, dict) or key not in row):
                columns = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise UserError(f"{path}: row {number} has no column {key!r} (columns: "
                                f"{columns}); set data.text_key/text_b_key/label_key")
        record = Record(str(row[data.text_key]), str(row[data.text_b_key])
                        if data.text_b_key else "", str(row[data.label_key]))
        rows.append((record, f"{record.text}\0{record.text_b}"))
    return rows


def _tfds_records(data: ml_collections.ConfigDict, split: str) -> Records:
    """All records of a TFDS classification dataset's split (labels from its ClassLabel)."""
    name = data.tfds_name
    text_key, text_b_key, label_key = TFDS_COLUMNS.get(
        name.split(":")[0], (data.text_key, data.text_b_key, data.label_key))
    source, info, tfds_split = tfds_source.open_split(name, split, data.tfds_data_dir or None)
    feature = info.features[label_key]
    labels = list(feature.names)

    def text(row, key):
        value = row[key]
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    records = [Record(text(row, text_key), text(row, text_b_key) if text_b_key else "",
                      labels[int(row[label_key])])
               for row in (source[i] for i in range(len(source))) if int(row[label_key]) >= 0]
    return Records(records, labels, f"tfds-{info.full_name}", f"{name}:{tfds_split}", split)


class ClassificationFeatures:
    """Random-access model features of `Records` (a Grain source).

    Each example: `tokens`, `token_types` int32 [T], `label` int32 [], `weight` float32 [] (1;
    0 in padding rows of the last eval batch).
    """

    def __init__(self, records: Records, tokenizer: TextTokenizer, seq_len: int):
        self.records, self.tokenizer, self.seq_len = records, tokenizer, seq_len
        self.cls, self.sep = tokenizer.piece_id("[CLS]"), tokenizer.piece_id("[SEP]")

    def __len__(self) -> int:
        return len(self.records)

    def featurize(self, text: str, text_b: str = "") -> dict[str, np.ndarray]:
        """[CLS] text [SEP] (text_b [SEP]) as padded `tokens` and `token_types`."""
        a = self.tokenizer.encode(text)
        b = self.tokenizer.encode(text_b) if text_b else []
        truncate_pair(a, b, self.seq_len - (3 if text_b else 2))
        ids = [self.cls, *a, self.sep] + ([*b, self.sep] if text_b else [])
        types = [0] * (len(a) + 2) + [1] * (len(ids) - len(a) - 2)
        pad = self.seq_len - len(ids)
        return {"tokens": np.pad(ids, (0, pad)).astype(np.int32),
                "token_types": np.pad(types, (0, pad)).astype(np.int32)}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        record = self.records.records[index]
        return {**self.featurize(record.text, record.text_b),
                "label": np.asarray(self.records.label_id(record.label), np.int32),
                "weight": np.asarray(1.0, np.float32)}
