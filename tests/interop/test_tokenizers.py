"""The Hugging Face tokenizer behind the project's interface: transformers' ids exactly."""

import numpy as np
import pytest

from tests.interop.conftest import EOT, STDLIB, transformers
from transformer_jax.data import text_tokenizer
from transformer_jax.data.hf_tokenizer import HFTokenizer, load_hf_tokenizer
from transformer_jax.errors import UserError


def _implements_interface(tok) -> bool:
    members = [n for n in dir(text_tokenizer.TextTokenizer) if not n.startswith("_")]
    return len(members) == 11 and all(hasattr(type(tok), n) for n in members)


def _strings() -> list[str]:
    code = (STDLIB / "json" / "decoder.py").read_text().splitlines()[:200]
    unicode = ["naïve café", "日本語のテキスト", "emoji 🎉🚀 mixed", "Ελληνικά", "\u2581meta▁char",
               "zero\u200bwidth", "العربية", "tab\tseparated\tvalues", "\x00nul\x01ctl"]
    space = ["", " ", "  leading", "trailing  ", "\n\n\n", "a\r\nb", "   \t  \n  x",
             "multiple     spaces"]
    return code + unicode + space + ["def f(x):\n    return x ** 2  # square\n",
                                     f"{EOT}special{EOT}"]


def test_ids_match_transformers(bpe_dir):
    ours = HFTokenizer.from_dir(bpe_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(bpe_dir)
    strings = _strings()
    assert len(strings) >= 200
    for s in strings:
        assert ours.encode(s) == theirs(s, add_special_tokens=False)["input_ids"], s
        if EOT not in s:
            assert ours.decode(ours.encode(s)) == s
            # Byte-level BPE: the byte accounting is exact.
            assert ours.token_bytes[ours.encode(s)].sum() == len(s.encode("utf-8"))


def test_special_tokens_come_from_the_files(bpe_dir):
    tok = HFTokenizer.from_dir(bpe_dir)
    eot = transformers.AutoTokenizer.from_pretrained(bpe_dir).eos_token_id
    assert tok.bos_id == tok.eos_id == tok.unk_id == eot
    assert tok.token_bytes[eot] == 0
    with pytest.raises(UserError, match="no pad token"):
        _ = tok.pad_id
    with pytest.raises(UserError, match="no token '\\[MASK\\]'"):
        tok.piece_id("[MASK]")


def test_run_directory_round_trip(bpe_dir, tmp_path):
    tok = load_hf_tokenizer(bpe_dir)
    assert _implements_interface(tok)
    tok.save_to_dir(tmp_path)
    again = text_tokenizer.load_from_dir(tmp_path)
    assert isinstance(again, HFTokenizer) and again.fingerprint == tok.fingerprint
    assert np.array_equal(again.token_bytes, tok.token_bytes)


def test_sentencepiece_tokenizer_is_the_same_interface(tmp_path):
    from transformer_jax.data.tokenizer import train_tokenizer

    sp = train_tokenizer([(STDLIB / "textwrap.py").read_text()], 400, model_type="bpe")
    assert _implements_interface(sp)
    sp.save_to_dir(tmp_path)
    assert text_tokenizer.load_from_dir(tmp_path).fingerprint == sp.fingerprint
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "spiece.model").write_bytes(sp.serialized_model())
    assert load_hf_tokenizer(tmp_path / "hf").encode("x = 1") == sp.encode("x = 1")
