"""Tokenizer: lossless on real code, exact byte accounting, special ids, cache behaviour."""

import numpy as np
import pytest

from tests.data.conftest import VOCAB_SIZE, ListSource
from transformer_jax.data import tokenizer
from transformer_jax.errors import UserError

EDGE_CASES = [
    "",
    "\n",
    "\n\n\n   \n\t\t\n",
    "    return x\r\n\tpass\f\v",
    "  leading and trailing spaces   ",
    "x\x00y \x1b[0m",
    "naïve café 中文 🐍 e\u0301 \ufeff \u00a0 \u2028",
    "the marker \u2581 and \u2581\u2581 itself",
    "12345678901234567890",
]


def test_lossless_on_stdlib_files(code_tokenizer, stdlib_train, stdlib_validation):
    files = [stdlib_validation[i] for i in range(len(stdlib_validation))]
    files += [stdlib_train[i] for i in range(3, len(stdlib_train), 10)]  # mostly unseen
    for text in files + EDGE_CASES:
        ids = code_tokenizer.encode(text)
        assert code_tokenizer.decode(ids) == text
        assert code_tokenizer.decode(np.asarray(ids, np.int32)) == text


def test_token_bytes_count_utf8_bytes_exactly(code_tokenizer, stdlib_validation):
    token_bytes = code_tokenizer.token_bytes
    assert token_bytes.shape == (VOCAB_SIZE,) and token_bytes.dtype == np.int32
    specials = [code_tokenizer.pad_id, code_tokenizer.unk_id, code_tokenizer.bos_id,
                code_tokenizer.eos_id]
    assert token_bytes[specials].tolist() == [0, 0, 0, 0]
    for text in [stdlib_validation[i] for i in range(5)] + EDGE_CASES:
        assert token_bytes[code_tokenizer.encode(text)].sum() == len(text.encode("utf-8"))


def test_special_ids_and_code_friendly_pieces(code_tokenizer):
    tok = code_tokenizer
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.vocab_size == VOCAB_SIZE
    assert tok.decode([tok.bos_id, *tok.encode("a = 1"), tok.eos_id, tok.pad_id]) == "a = 1"
    # Newlines live in pieces; digits are split; text is compressed, not spelled out.
    pieces = [tok.decode([i]) for i in tok.encode("def f():\n    return 2024\n")]
    assert any("\n" in p for p in pieces)
    assert "2" in pieces and "4" in pieces
    sample = "import os\nimport sys\n\n\ndef main():\n    return None\n"
    assert len(tok.encode(sample)) < 0.6 * len(sample)


def test_huge_text_encodes_in_bounded_pieces(code_tokenizer):
    text = "x" * 2_500_001  # one line, longer than the per-call bound
    ids = code_tokenizer.encode(text)
    assert code_tokenizer.decode(ids) == text


def test_save_load_roundtrip_and_user_symbols(tmp_path, stdlib_train):
    docs = [stdlib_train[i] for i in range(40)]
    tok = tokenizer.train_tokenizer(
        docs, 400, model_type="bpe", user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"]
    )
    # User symbols take the ids after the 4 specials, in order, and stay single tokens.
    assert tok.encode("x[CLS]y [SEP] [MASK]")[1:2] == [4]
    assert [tok.encode(s) for s in ("[CLS]", "[SEP]", "[MASK]")] == [[4], [5], [6]]
    assert tok.token_bytes[6] == len("[MASK]")
    path = tmp_path / "sub" / "tok.model"
    tok.save(path)
    loaded = tokenizer.Tokenizer.load(path)
    assert loaded.serialized_model() == tok.serialized_model()
    assert loaded.encode(docs[0]) == tok.encode(docs[0])
    assert [p.name for p in path.parent.iterdir()] == ["tok.model"]  # no temp file left


def test_bad_inputs_raise_user_errors(tmp_path, stdlib_train):
    docs = [stdlib_train[i] for i in range(20)]
    with pytest.raises(UserError, match="vocab_size=300 .*Vocabulary size is smaller"):
        tokenizer.train_tokenizer(docs, 300)
    with pytest.raises(UserError, match="model_type='word' is unknown"):
        tokenizer.train_tokenizer(docs, 400, model_type="word")
    with pytest.raises(UserError, match="does not exist"):
        tokenizer.Tokenizer.load(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.model is not a usable tokenizer"):
        tokenizer.Tokenizer.load(tmp_path / "junk.model")


def test_training_is_deterministic(stdlib_train):
    docs = [stdlib_train[i] for i in range(0, 300, 10)]
    first = tokenizer.train_tokenizer(docs, 400, max_chars=100_000)
    second = tokenizer.train_tokenizer(docs, 400, max_chars=100_000)
    assert first.serialized_model() == second.serialized_model()


def test_load_or_train_caches_by_corpus_and_options(tmp_path, monkeypatch, stdlib_train):
    docs = [stdlib_train[i] for i in range(0, 600, 10)]
    source = ListSource(docs)
    trained = tokenizer.load_or_train(source, 400, cache_dir=tmp_path, max_chars=100_000)
    (model_file,) = tmp_path.glob("list-400-*.model")

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache has this tokenizer")

    monkeypatch.setattr(tokenizer, "train_tokenizer", no_training)
    cached = tokenizer.load_or_train(source, 400, cache_dir=tmp_path, max_chars=100_000)
    assert cached.serialized_model() == trained.serialized_model()
    monkeypatch.undo()

    # Another corpus (fingerprint) or option is another cache entry; the env var sets the dir.
    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path / "env"))
    changed = ListSource(docs[:-1])
    tokenizer.load_or_train(changed, 400, max_chars=100_000)
    assert len(list((tmp_path / "env").glob("list-400-*.model"))) == 1
    tokenizer.load_or_train(source, 400, cache_dir=tmp_path, max_chars=90_000)
    assert len(list(tmp_path.glob("list-400-*.model"))) == 2
    assert model_file.exists()

    with pytest.raises(ValueError, match="train split"):
        tokenizer.load_or_train(ListSource(docs, split="validation"), 400, cache_dir=tmp_path)


def test_stdlib_source_name_keys_the_cache(tmp_path, stdlib_train, monkeypatch):
    captured = {}

    def fake_train(texts, vocab_size, **options):
        captured["first"] = next(iter(texts))
        captured["options"] = options
        return tokenizer.Tokenizer(trained.serialized_model())

    trained = tokenizer.train_tokenizer([stdlib_train[0]] * 5, 400, model_type="bpe")
    monkeypatch.setattr(tokenizer, "train_tokenizer", fake_train)
    tokenizer.load_or_train(stdlib_train, 400, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("stdlib-400-*.model"))) == 1
    # Default sample: 2000 characters per piece; documents come in a seeded shuffled order.
    assert captured["options"]["max_chars"] == 800_000
    assert captured["first"] != stdlib_train[0]
