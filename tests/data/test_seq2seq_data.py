"""Parallel-text sources and seq2seq examples: formats, splits, bad inputs, long examples."""

import textwrap

import ml_collections
import numpy as np
import pytest

from transformer_jax.data import pairs, seq2seq
from transformer_jax.errors import UserError


def data_config(**overrides):
    base = dict(source="tsv", path="", source_path="", target_path="", tfds_name="",
                tfds_data_dir="", source_key="", target_key="", validation_fraction=0.3,
                tokenizer_cache_dir="")
    return ml_collections.ConfigDict({**base, **overrides})


def test_tsv_and_aligned_files_give_the_same_pairs_and_splits(tmp_path):
    sources = [f"source sentence {i}" for i in range(40)]
    targets = [f"target {i}" for i in range(40)]
    (tmp_path / "p.tsv").write_text(
        "\n".join(f"{s}\t{t}" for s, t in zip(sources, targets, strict=True)) + "\n\n")
    (tmp_path / "s.txt").write_text("\n".join(sources) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(targets) + "\n")
    got = {}
    for split in ("train", "validation"):
        tsv = pairs.make_pairs(data_config(path=str(tmp_path / "p.tsv")), split)
        files = pairs.make_pairs(data_config(source="files", source_path=str(tmp_path / "s.txt"),
                                             target_path=str(tmp_path / "t.txt")), split)
        assert [tsv[i] for i in range(len(tsv))] == [files[i] for i in range(len(files))]
        got[split] = {tsv[i] for i in range(len(tsv))}
    assert got["train"] | got["validation"] == set(zip(sources, targets, strict=True))
    assert not got["train"] & got["validation"] and got["validation"]


def test_bad_parallel_files_are_clear_errors(tmp_path):
    (tmp_path / "s.txt").write_text("a\nb\nc\n")
    (tmp_path / "t.txt").write_text("x\ny\n")
    with pytest.raises(UserError, match="misaligned.*3 lines.*2"):
        pairs.AlignedPairs(str(tmp_path / "s.txt"), str(tmp_path / "t.txt"), "train", 0.1)
    (tmp_path / "bad.tsv").write_text("a\tx\nno tab here\n")
    with pytest.raises(UserError, match=r"bad.tsv:2: expected 'source<TAB>target'"):
        pairs.TsvPairs(str(tmp_path / "bad.tsv"), "train", 0.1)
    with pytest.raises(UserError, match="does not exist"):
        pairs.TsvPairs(str(tmp_path / "missing.tsv"), "train", 0.1)
    with pytest.raises(UserError, match="data.source_path"):
        pairs.make_pairs(data_config(source="files"), "train")


def test_missing_tfds_dataset_says_not_prepared(tmp_path):
    for name in ("wmt14_translate/de-en", "cnn_dailymail", "xsum"):
        with pytest.raises(UserError, match=f"'{name}' is not prepared in DATA_DIR={tmp_path}"):
            pairs.make_pairs(data_config(source="tfds", tfds_name=name,
                                         tfds_data_dir=str(tmp_path)), "train")


class Pairs(list):
    name, split = "list", "train"


def test_empty_and_over_long_pairs_are_counted_never_crash(code_tokenizer):
    data = Pairs([("def f(x):\n    return x", "Return x."), ("", "Nothing."), ("x", "  "),
                  ("y = 1\n" * 50, "Long."), ("z", "a very long target " * 20)])
    truncated = seq2seq.Seq2SeqExamples(data, code_tokenizer, 16, 12, "truncate")
    assert (truncated.report.pairs, truncated.report.kept, truncated.report.empty) == (5, 3, 2)
    assert (truncated.report.long_source, truncated.report.long_target) == (1, 1)
    assert "3/5 pairs kept" in str(truncated.report)
    for i in range(len(truncated)):
        ex = truncated.dataset[i]
        assert ex["source"].shape == (16,) and ex["targets"].shape == (12,)
        # Truncated sides still end in EOS; target_inputs are targets shifted right after BOS.
        src_len = int((ex["source"] != 0).sum())
        assert ex["source"][src_len - 1] == code_tokenizer.eos_id
        n = int((ex["targets"] != 0).sum())
        assert ex["targets"][n - 1] == code_tokenizer.eos_id
        assert ex["target_inputs"][0] == code_tokenizer.bos_id
        np.testing.assert_array_equal(ex["target_inputs"][1:n], ex["targets"][: n - 1])
    dropped = seq2seq.Seq2SeqExamples(data, code_tokenizer, 16, 12, "drop")
    assert (dropped.report.kept, dropped.report.dropped) == (1, 2)
    assert dropped.pair(0) == data[0]
    with pytest.raises(UserError, match="long_examples"):
        seq2seq.Seq2SeqExamples(data, code_tokenizer, 16, 12, "wrap")


def test_code_summaries_split_by_file(tmp_path):
    for name in ("a", "b", "c", "d", "e", "f"):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(f'''
            def {name}_one(x):
                """Add one to x. More detail here.

                Second paragraph.
                """
                return x + 1


            async def {name}_two():
                """Wait for it!"""


            def undocumented():
                return 0
        '''))
    (tmp_path / "broken.py").write_text("def (:\n")
    cache = tmp_path / "cache"
    split = {s: pairs.CodeSummaries(s, 0.4, str(tmp_path), str(cache))
             for s in ("train", "validation")}
    assert len(split["train"]) + len(split["validation"]) == 12
    assert len(split["validation"]) % 2 == 0  # both functions of a file stay together
    everything = [p[i] for p in split.values() for i in range(len(p))]
    one = next(p for p in everything if p[0].startswith("def a_one"))
    assert one == ("def a_one(x):\n    return x + 1", "Add one to x.")
    two = next(p for p in everything if p[0].startswith("async def a_two"))
    assert two == ("async def a_two():\n    pass", "Wait for it!")
    assert list(cache.glob("code_summaries-*.json"))  # cached for the next run
    again = pairs.CodeSummaries("train", 0.4, str(tmp_path), str(cache))
    assert [again[i] for i in range(len(again))] == [
        split["train"][i] for i in range(len(split["train"]))]
