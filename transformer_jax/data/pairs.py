"""Sources of (source text, target text) pairs for sequence-to-sequence tasks.

A pair source has `__len__`, `__getitem__(i) -> (source, target)`, a `split`, a `name` and a
`fingerprint` (the tokenizer-cache key). Kinds:

- `TsvPairs`: one pair per line, "source<TAB>target";
- `AlignedPairs`: two files with the same number of lines (line i of each is a pair);
- `TfdsPairs`: a prepared TFDS dataset (wmt14_translate/de-en, wmt_t2t_translate/de-en,
  cnn_dailymail, xsum) read through `tfds.data_source`, without TensorFlow;
- `CodeSummaries`: the offline default, built from Python source (the standard library by
  default): a function's code with its docstring removed -> the docstring's first sentence.

Local files and code are split into train/validation by a stable hash (of the line for files,
of the file path for code, so no function's file is in both splits).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pathlib
import re
import sys

import ml_collections
from absl import logging

from transformer_jax.data import tokenizer as tokenizer_lib
from transformer_jax.data.sources import stdlib_files
from transformer_jax.data.splits import check_split, split_of
from transformer_jax.data.tfds_source import open_split
from transformer_jax.errors import UserError

Pair = tuple[str, str]

# (source feature, target feature) of the TFDS datasets this project knows.
TFDS_FEATURES = {
    "wmt14_translate/de-en": ("en", "de"),
    "wmt_t2t_translate/de-en": ("en", "de"),
    "cnn_dailymail": ("article", "highlights"),
    "xsum": ("document", "summary"),
}


class _ListPairs:
    """Pairs held in memory, with the split already applied."""

    def __init__(self, pairs: list[Pair], name: str, fingerprint: str, split: str):
        self._pairs, self.name, self.fingerprint, self.split = pairs, name, fingerprint, split

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> Pair:
        return self._pairs[index]


def _read_lines(path: str) -> list[str]:
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"parallel data file {file} does not exist")
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{file} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _file_fingerprint(*paths: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(pathlib.Path(path).expanduser().read_bytes())
    return digest.hexdigest()[:16]


def _split_pairs(pairs: list[Pair], split: str, validation_fraction: float) -> list[Pair]:
    # Keyed by the source text, so a duplicated source never lands in both splits.
    return [p for p in pairs if split_of(p[0], validation_fraction) == split]


class TsvPairs(_ListPairs):
    """Pairs from a UTF-8 file of "source<TAB>target" lines (blank lines are skipped)."""

    def __init__(self, path: str, split: str, validation_fraction: float):
        check_split(split, validation_fraction)
        pairs = []
        for number, line in enumerate(_read_lines(path), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise UserError(
                    f"{path}:{number}: expected 'source<TAB>target', found {len(fields)} "
                    "tab-separated fields; fix the line or remove it"
                )
            pairs.append((fields[0], fields[1]))
        super().__init__(_split_pairs(pairs, split, validation_fraction),
                         f"tsv-{pathlib.Path(path).name}", _file_fingerprint(path), split)


class AlignedPairs(_ListPairs):
    """Pairs from two line-aligned UTF-8 files (line i of each file is one pair)."""

    def __init__(self, source_path: str, target_path: str, split: str,
                 validation_fraction: float):
        check_split(split, validation_fraction)
        sources, targets = _read_lines(source_path), _read_lines(target_path)
        if len(sources) != len(targets):
            raise UserError(
                f"parallel files are misaligned: {source_path} has {len(sources)} lines but "
                f"{target_path} has {len(targets)}; they must have one line per pair"
            )
        pairs = list(zip(sources, targets, strict=True))
        super().__init__(_split_pairs(pairs, split, validation_fraction),
                         f"files-{pathlib.Path(source_path).name}",
                         _file_fingerprint(source_path, target_path), split)


class TfdsPairs:
    """Pairs from a prepared TFDS dataset, read by random access (array_record, no TF).

    Our "validation" is the dataset's "validation" split, else its "test" split.
    """

    def __init__(self, name: str, split: str, data_dir: str | None = None,
                 source_key: str = "", target_key: str = ""):
        check_split(split, 0.0)
        base = name.split(":")[0]
        if not (source_key and target_key):
            if base not in TFDS_FEATURES:
                raise UserError(
                    f"set data.source_key and data.target_key for TFDS dataset {name!r} "
                    f"(known defaults: {sorted(TFDS_FEATURES)})"
                )
            source_key, target_key = TFDS_FEATURES[base]
        self._data, info, tfds_split = open_split(name, split, data_dir)
        features = info.features  # WMT: a Translation feature, keyed by language
        for key in (source_key, target_key):
            if key not in features:
                raise UserError(f"TFDS dataset {name!r} has no feature {key!r}; set "
                                "data.source_key / data.target_key")
        self._keys = (source_key, target_key)
        self.name = f"tfds-{info.full_name}"
        self.fingerprint = f"{info.full_name}-{tfds_split}-{info.splits[tfds_split].num_examples}"
        self.split = split

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> Pair:
        record = self._data[range(len(self))[index]]

        def text(key):
            value = record[key]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)

        return text(self._keys[0]), text(self._keys[1])


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence: its first paragraph, up to the first '. ', one line."""
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    match = re.search(r"(?<=[.!?])\s", paragraph)
    return paragraph[: match.start()] if match else paragraph


def _file_summaries(path: pathlib.Path) -> list[Pair]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return []
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node)
        summary = first_sentence(docstring) if docstring else ""
        if not summary:
            continue
        node.body = node.body[1:] or [ast.Pass()]  # drop the docstring
        try:
            code = ast.unparse(node)
        except (ValueError, RecursionError):
            continue
        pairs.append((code, summary))
    return pairs


class CodeSummaries(_ListPairs):
    """Function code (docstring removed) -> first sentence of its docstring.

    Files are assigned to splits by a hash of their path relative to `root`, so every
    function of a file is in the same split. Extracting the stdlib's ~8,500 documented
    functions takes ~20 s, so the pairs are cached as JSON next to the tokenizers.
    """

    def __init__(self, split: str, validation_fraction: float, path: str = "",
                 cache_dir: str | None = None):
        check_split(split, validation_fraction)
        if path:
            root = pathlib.Path(path).expanduser()
            files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
            if not files or not files[0].is_file():
                raise UserError(f"data.path={path!r} has no .py files")
        else:
            files = stdlib_files()
            root = files[0].parent
            for f in files:  # the common root
                while root not in f.parents:
                    root = root.parent
        by_file = self._load(root, files, cache_dir)
        pairs = [pair for rel, file_pairs in by_file.items()
                 if split_of(rel, validation_fraction) == split for pair in file_pairs]
        name = "code-" + (root.name or "root") if path else "code-stdlib"
        fingerprint = hashlib.sha256(
            json.dumps(sorted((k, len(v)) for k, v in by_file.items())).encode()
        ).hexdigest()[:16]
        super().__init__(pairs, name, fingerprint, split)

    @staticmethod
    def _load(root: pathlib.Path, files: list[pathlib.Path], cache_dir: str | None
              ) -> dict[str, list[Pair]]:
        stats = json.dumps([sys.version, str(root)] +
                           [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files])
        key = hashlib.sha256(stats.encode()).hexdigest()[:16]
        cache = pathlib.Path(cache_dir or tokenizer_lib.default_cache_dir()).expanduser()
        cache_file = cache / f"code_summaries-{key}.json"
        if cache_file.is_file():
            return {k: [tuple(p) for p in v]
                    for k, v in json.loads(cache_file.read_text("utf-8")).items()}
        logging.info("extracting documented functions from %d files under %s", len(files), root)
        by_file = {str(f.relative_to(root)) if f != root else f.name: _file_summaries(f)
                   for f in files}
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(by_file), "utf-8")
            tmp.replace(cache_file)
        except OSError as e:
            logging.warning("cannot cache code summaries at %s: %s", cache_file, e)
        return by_file


def make_pairs(data: ml_collections.ConfigDict, split: str):
    """The pair source selected by `data.source`: code | tsv | files | tfds."""
    fraction = data.validation_fraction
    cache_dir = data.get("tokenizer_cache_dir") or None
    if data.source == "code":
        return CodeSummaries(split, fraction, data.path, cache_dir)
    if data.source == "tsv":
        if not data.path:
            raise UserError("data.source=tsv needs data.path=FILE.tsv")
        return TsvPairs(data.path, split, fraction)
    if data.source == "files":
        if not (data.source_path and data.target_path):
            raise UserError("data.source=files needs data.source_path and data.target_path")
        return AlignedPairs(data.source_path, data.target_path, split, fraction)
    if data.source == "tfds":
        if not data.tfds_name:
            raise UserError("data.source=tfds needs data.tfds_name (e.g. wmt14_translate/de-en)")
        return TfdsPairs(data.tfds_name, split, data.tfds_data_dir or None,
                         data.source_key, data.target_key)
    raise UserError(f"data.source={data.source!r} is unknown; use code, tsv, files or tfds")
