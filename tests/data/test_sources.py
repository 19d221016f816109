"""Text sources: stdlib and local files, splits, bad input, huge documents, make_source."""

import collections
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from transformer_jax.data import sources
from transformer_jax.errors import UserError


def _texts(source) -> list[str]:
    return [source[i] for i in range(len(source))]


def _write_corpus(root, n: int) -> list[str]:
    """n small files with distinct contents, in nested directories."""
    texts = []
    for i in range(n):
        path = root / f"d{i % 4}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        texts.append(f"document {i}\n" + "x = 1\n" * (i % 5))
        path.write_text(texts[-1])
    return texts


def test_split_of_is_stable_across_processes_and_near_fraction():
    keys = [f"dir/file{i}.py" for i in range(4000)]
    here = [sources.split_of(k, 0.1) for k in keys]
    share = here.count("validation") / len(keys)
    assert 0.08 < share < 0.12
    # A salted hash() would differ between interpreters with different PYTHONHASHSEED.
    code = (
        "from transformer_jax.data.sources import split_of;"
        f"print(''.join('v' if split_of(f'dir/file{{i}}.py', 0.1) == 'validation' else 't'"
        f" for i in range({len(keys)})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    ).stdout.strip()
    assert out == "".join("v" if s == "validation" else "t" for s in here)


def test_stdlib_files_found_without_site_packages():
    files = sources.stdlib_files()
    names = {f.name for f in files}
    assert {"os.py", "functools.py", "__init__.py"} <= names
    assert not any({"site-packages", "dist-packages"} & set(f.parts) for f in files)
    assert files == sorted(files)
    assert sum(f.stat().st_size for f in files) > 5_000_000


def test_stdlib_splits_disjoint_and_covering(stdlib_train, stdlib_validation):
    everything = sources.StdlibSource("train", validation_fraction=0.0)
    train, validation = _texts(stdlib_train), _texts(stdlib_validation)
    assert 0 < len(validation) < 0.05 * len(train)
    assert collections.Counter(train) + collections.Counter(validation) == collections.Counter(
        _texts(everything)
    )
    assert stdlib_train.name == "stdlib" and "python" in stdlib_train.fingerprint
    assert _texts(sources.StdlibSource("validation")) == validation  # deterministic


def test_local_directory_splits_disjoint_covering_deterministic(tmp_path):
    texts = _write_corpus(tmp_path, 60)
    train = sources.LocalSource(str(tmp_path), "train", validation_fraction=0.3)
    validation = sources.LocalSource(str(tmp_path), "validation", validation_fraction=0.3)
    assert set(_texts(train)).isdisjoint(_texts(validation))
    assert sorted(_texts(train) + _texts(validation)) == sorted(texts)
    assert len(validation) > 5
    held_out = _texts(validation)
    again = sources.LocalSource(str(tmp_path), "validation", validation_fraction=0.3)
    assert _texts(again) == held_out
    # The split follows each file's path below the root, not where the corpus lives.
    moved = tmp_path.rename(tmp_path.with_name("moved"))
    assert _texts(sources.LocalSource(str(moved), "validation", 0.3)) == held_out


def test_local_single_file_and_comma_list(tmp_path):
    (tmp_path / "a.py").write_text("print('a')\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.txt").write_text("cé\n")
    (tmp_path / "b" / ".hidden").write_text("secret")
    source = sources.LocalSource(f"{tmp_path / 'a.py'}, {tmp_path / 'b'}", "train", 0.0)
    assert _texts(source) == ["print('a')\n", "cé\n"]
    assert source.name == "local"


def test_local_fingerprint_changes_with_corpus(tmp_path):
    _write_corpus(tmp_path, 5)
    before = sources.LocalSource(str(tmp_path), "train", 0.0).fingerprint
    assert sources.LocalSource(str(tmp_path), "train", 0.0).fingerprint == before
    (tmp_path / "new.txt").write_text("more text")
    assert sources.LocalSource(str(tmp_path), "train", 0.0).fingerprint != before


def test_jsonl_lines_are_documents(tmp_path):
    lines = [json.dumps({"text": f"line {i}\nsecond", "body": f"b{i}"}) for i in range(200)]
    lines.insert(3, "")  # Blank lines are skipped.
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    train = sources.LocalSource(str(path), "train", validation_fraction=0.2)
    validation = sources.LocalSource(str(path), "validation", validation_fraction=0.2)
    expected = [f"line {i}\nsecond" for i in range(200)]
    assert sorted(_texts(train) + _texts(validation)) == sorted(expected)
    assert 20 < len(validation) < 60  # lines, not the one file, are split
    # Keys are "<file>:<line number>".
    held_out = [i for i, line in enumerate(lines, 1) if line and sources.split_of(
        f"corpus.jsonl:{i}", 0.2) == "validation"]
    assert len(held_out) == len(validation)
    other_key = sources.LocalSource(str(path), "train", 0.0, jsonl_key="body")
    assert _texts(other_key) == [f"b{i}" for i in range(200)]


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"text": "ok"}\n{"text": \n', r"corpus.jsonl:2: not valid JSON"),
        ('{"text": "ok"}\n{"title": "x"}\n', r"corpus.jsonl:2: no string field 'text'"),
        ("[1, 2]\n", r"corpus.jsonl:1: no string field"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, content, match):
    (tmp_path / "corpus.jsonl").write_text(content)
    with pytest.raises(UserError, match=match) as error:
        sources.LocalSource(str(tmp_path / "corpus.jsonl"), "train", 0.0)
    assert "\n" not in str(error.value)


def test_missing_and_empty_paths_raise(tmp_path):
    cases = [
        (str(tmp_path / "nope"), "does not exist"),
        ("", "does not exist"),
        (str(tmp_path / "empty.txt"), "no text in .*1 empty"),
        (str(tmp_path / "emptydir"), "has no files"),
    ]
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "emptydir").mkdir()
    for path, match in cases:
        with pytest.raises(UserError, match=match) as error:
            sources.LocalSource(path, "train")
        assert "\n" not in str(error.value)


def test_non_utf8_files_skipped_with_one_counted_warning(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(sources.logging, "warning", lambda *args: warnings.append(args))
    texts = _write_corpus(tmp_path, 7)
    (tmp_path / "nul.bin").write_bytes(b"abc\x00def")
    (tmp_path / "png.png").write_bytes(bytes(range(256)))
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    source = sources.LocalSource(str(tmp_path), "train", 0.0)
    assert sorted(_texts(source)) == sorted(texts)
    for split in ("train", "validation", "validation"):  # as every evaluation re-indexes
        sources.LocalSource(str(tmp_path), split, 0.5)
    assert len(warnings) == 1  # once per process and corpus
    message = warnings[0][0] % warnings[0][1:]
    assert message.startswith(f"skipped 3 of 10 files under {tmp_path}: not UTF-8 text")


def test_only_binary_files_raise(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(UserError, match="no text in .*2 not UTF-8"):
        sources.LocalSource(str(tmp_path), "train")


def test_empty_split_and_bad_arguments_raise(tmp_path):
    (tmp_path / "one.txt").write_text("just one document")
    with pytest.raises(UserError, match="split 'validation' of .* is empty"):
        sources.LocalSource(str(tmp_path), "validation", validation_fraction=0.0)
    with pytest.raises(UserError, match="validation_fraction=1.5"):
        sources.LocalSource(str(tmp_path), "train", validation_fraction=1.5)
    with pytest.raises(UserError, match="split='test' is unknown"):
        sources.LocalSource(str(tmp_path), "test")


def test_huge_single_line_is_chunked(tmp_path):
    size = 20_000_000
    line = ("abcdéfgh" * (size // 8 + 1))[:size]  # one line, multi-byte chars
    (tmp_path / "huge.txt").write_text(line)
    source = sources.LocalSource(str(tmp_path / "huge.txt"), "train", 0.0)
    chunks = _texts(source)
    assert len(chunks) == 20
    assert all(len(c) == 1_000_000 for c in chunks)
    assert "".join(chunks) == line


def test_long_documents_chunk_at_line_boundaries(tmp_path):
    text = "".join(f"line {i:04d}\n" for i in range(1000))  # 10 chars a line
    (tmp_path / "long.txt").write_text(text)
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": text}) + "\n")
    for name in ("long.txt", "long.jsonl"):
        chunks = _texts(sources.LocalSource(str(tmp_path / name), "train", 0.0, max_doc_chars=95))
        assert "".join(chunks) == text
        assert all(len(c) == 90 and c.endswith("\n") for c in chunks[:-1])


def test_make_source_dispatch_and_errors(tmp_path):
    _write_corpus(tmp_path, 3)
    cfg = ml_collections.ConfigDict({
        "source": "local", "path": str(tmp_path), "tfds_name": "", "tfds_data_dir": "",
        "text_key": "text", "validation_fraction": 0.0,
    })
    assert len(sources.make_source(cfg, "train")) == 3
    cfg.path = ""
    with pytest.raises(UserError, match="data.path is empty"):
        sources.make_source(cfg, "train")
    cfg.source = "parquet"
    with pytest.raises(UserError, match="data.source='parquet' is unknown"):
        sources.make_source(cfg, "train")
    cfg.source = "stdlib"
    cfg.validation_fraction = 0.02
    assert sources.make_source(cfg, "validation").name == "stdlib"


def test_a_single_file_is_split_by_position(tmp_path):
    """One document: the hash would put it all in one split; by position, the last
    validation_fraction of its text is validation, cut at a line break."""
    text = "".join(f"line {i}: é\n" for i in range(200))
    (tmp_path / "novel.txt").write_text(text)
    train, validation = (sources.LocalSource(str(tmp_path / "novel.txt"), split, 0.1)
                         for split in ("train", "validation"))
    (head,), (tail,) = _texts(train), _texts(validation)
    assert head + tail == text and head.endswith("\n")
    assert abs(len(tail.encode()) - 0.1 * len(text.encode())) <= 20  # one line at most
    # A JSON-lines corpus of one document is cut in its text, by characters.
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": "abcdefghij" * 10}) + "\n")
    lines = [_texts(sources.LocalSource(str(tmp_path / "one.jsonl"), s, 0.2))[0]
             for s in ("train", "validation")]
    assert lines == ["abcdefghij" * 8, "abcdefghij" * 2]


def test_validation_path_holds_out_a_whole_file(tmp_path):
    (tmp_path / "train").mkdir()
    for i in range(3):
        (tmp_path / "train" / f"{i}.txt").write_text(f"train {i}\n")
    (tmp_path / "held_out.txt").write_text("validation text\n")
    data = ml_collections.ConfigDict(dict(source="local", path=str(tmp_path / "train"),
                                          validation_fraction=0.5,
                                          validation_path=str(tmp_path / "held_out.txt")))
    assert sorted(_texts(sources.make_source(data, "train"))) == [
        "train 0\n", "train 1\n", "train 2\n"]  # all of path: no fraction held out
    assert _texts(sources.make_source(data, "validation")) == ["validation text\n"]
