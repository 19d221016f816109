"""A Hugging Face tokenizer (`tokenizer.json`) behind the project's `TextTokenizer` interface.

The `tokenizers` library does the work (GPT-2 byte-level BPE, BERT WordPiece, Llama's
SentencePiece-style BPE). Special tokens come from the model's own files: tokenizer_config.json,
else special_tokens_map.json, else config.json's `*_token_id`; nothing is assumed to be id 0,
and a tokenizer without a pad token says so when `pad_id` is asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np
import tokenizers
from etils import epath

from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

TOKENIZER_JSON = "tokenizer.json"
# Files that travel with a tokenizer.json (the specials live in them).
SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json")
SENTENCEPIECE_FILES = ("spiece.model", "source.spm", "tokenizer.model")
ROLES = ("pad", "bos", "eos", "unk", "cls", "sep", "mask", "decoder_start")
# The project's symbolic pieces (BERT featurizers) -> the role whose token plays them.
_PIECE_ROLES = {"[CLS]": "cls", "[SEP]": "sep", "[MASK]": "mask", "[PAD]": "pad"}


def _token_text(value) -> str | None:
    """A special-token entry of tokenizer_config.json: "text" or {"content": "text"}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """A `tokenizers.Tokenizer` plus its special tokens (implements `TextTokenizer`).

    Args:
      files: file name -> bytes: tokenizer.json and the side files found with it (written
        back unchanged by `save_to_dir`, so an export carries the same tokenizer).
      config_ids: `*_token_id` values from the model's config.json (a fallback).
    """

    def __init__(self, files: dict[str, bytes], config_ids: dict[str, int] | None = None):
        self._files = dict(files)
        try:
            self._tok = tokenizers.Tokenizer.from_str(files[TOKENIZER_JSON].decode("utf-8"))
        except Exception as e:  # tokenizers raises plain Exceptions
            raise UserError(f"{TOKENIZER_JSON} is not a usable tokenizer ({e})") from e
        texts: dict[str, str] = {}
        for name in reversed(SIDE_FILES):  # tokenizer_config.json wins
            if name in files:
                meta = json.loads(files[name])
                texts.update({r: t for r in ROLES
                              if (t := _token_text(meta.get(f"{r}_token"))) is not None})
        self._ids = {r: i for r, i in (config_ids or {}).items() if isinstance(i, int)}
        for role, text in texts.items():
            i = self._tok.token_to_id(text)
            if i is None:
                raise UserError(f"the tokenizer's {role}_token {text!r} is not in its vocabulary")
            self._ids[role] = i

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> HFTokenizer:
        """Reads tokenizer.json and its side files (and config.json's ids) from `directory`."""
        directory = epath.Path(directory)
        if not (directory / TOKENIZER_JSON).is_file():
            raise UserError(f"{directory} has no {TOKENIZER_JSON}")
        files = {name: (directory / name).read_bytes()
                 for name in (TOKENIZER_JSON, *SIDE_FILES) if (directory / name).is_file()}
        config_ids = {}
        if (directory / "config.json").is_file():
            config = json.loads((directory / "config.json").read_text())
            config_ids = {r: config.get(f"{r}_token_id") for r in ROLES}
            files["config_ids.json"] = json.dumps(config_ids).encode()
        elif (directory / "config_ids.json").is_file():  # a run directory's copy
            config_ids = json.loads((directory / "config_ids.json").read_text())
            files["config_ids.json"] = (directory / "config_ids.json").read_bytes()
        return cls(files, config_ids)

    def save_to_dir(self, directory: str | os.PathLike) -> None:
        """Writes its files into `directory`/tokenizer/ (a run directory)."""
        from transformer_jax.data.text_tokenizer import HF_TOKENIZER_DIR

        self.save_files(epath.Path(directory) / HF_TOKENIZER_DIR)

    def save_files(self, directory: str | os.PathLike, *, hf_dir: bool = False) -> None:
        """Writes tokenizer.json and its side files into `directory` (`hf_dir`: leave out
        the run directory's record of config.json ids)."""
        directory = epath.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self._files.items():
            if not (hf_dir and name == "config_ids.json"):
                (directory / name).write_bytes(data)

    # Ids --------------------------------------------------------------------------------
    def special_id(self, role: str) -> int | None:
        """The id of the `role` token (one of `ROLES`; "decoder_start" comes from config.json
        `decoder_start_token_id`), or None."""
        return self._ids.get(role)

    def _required(self, role: str, fallback: str | None = None) -> int:
        i = self._ids.get(role, self._ids.get(fallback) if fallback else None)
        if i is None:
            raise UserError(f"this Hugging Face tokenizer has no {role} token (set {role}_token "
                            "in its tokenizer_config.json)")
        return i

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int:
        return self._required("pad")

    @property
    def unk_id(self) -> int:
        return self._required("unk")

    @property
    def bos_id(self) -> int:
        """The bos token; tokenizers without one (GPT-2 style) separate documents with eos."""
        return self._required("bos", fallback="eos")

    @property
    def eos_id(self) -> int:
        return self._required("eos")

    def piece_id(self, piece: str) -> int:
        role = _PIECE_ROLES.get(piece)
        if role is not None and role in self._ids:
            return self._ids[role]
        i = self._tok.token_to_id(piece)
        if i is None:
            raise UserError(f"the Hugging Face tokenizer has no token {piece!r}"
                            + (f" and no {role}_token" if role else ""))
        return i

    @functools.cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self._files):
            digest.update(name.encode() + b"\0" + self._files[name])
        return digest.hexdigest()[:16]

    # Text -------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._tok.decode(np.asarray(ids, np.int64).tolist(), skip_special_tokens=True)

    @functools.cached_property
    def token_bytes(self) -> np.ndarray:
        """int32 [vocab_size]: bytes each token adds to decoded text.

        Exact for byte-level BPE (each character of a piece stands for one byte) and for
        SentencePiece-style vocabularies ("▁" is a space, `<0xAB>` one byte); for WordPiece
        the piece's text without "##" (the spaces between words are not counted). 0 for
        special tokens.
        """
        spec = json.loads(self._files[TOKENIZER_JSON])
        byte_level = '"ByteLevel"' in json.dumps(spec.get("decoder"))
        special = {t.content for t in self._tok.get_added_tokens_decoder().values() if t.special}
        sizes = np.zeros(self.vocab_size, np.int32)
        for piece, i in self._tok.get_vocab(with_added_tokens=True).items():
            if piece in special:
                continue
            if byte_level:
                sizes[i] = len(piece)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                sizes[i] = 1
            else:
                sizes[i] = len(piece.removeprefix("##").replace("\u2581", " ").encode("utf-8"))
        return sizes


def load_hf_tokenizer(directory: str | os.PathLike) -> TextTokenizer:
    """The tokenizer of a Hugging Face model directory: tokenizer.json (tokenizers), else
    spiece.model / source.spm / tokenizer.model (SentencePiece)."""
    directory = epath.Path(directory)
    if (directory / TOKENIZER_JSON).is_file():
        return HFTokenizer.from_dir(directory)
    for name in SENTENCEPIECE_FILES:
        if (directory / name).is_file():
            from transformer_jax.data.tokenizer import Tokenizer

            return Tokenizer.load(directory / name)
    raise UserError(f"{directory} has no tokenizer ({TOKENIZER_JSON} or "
                    f"{' / '.join(SENTENCEPIECE_FILES)}): copy the model's tokenizer files there")
