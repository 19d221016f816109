"""The one tokenizer interface every pipeline, task, `generate` and `predict` takes.

Two implementations: `data/tokenizer.py:Tokenizer` (SentencePiece, trained here or loaded
from a `.model`/`spiece.model`/`source.spm` file) and `data/hf_tokenizer.py:HFTokenizer`
(a Hugging Face `tokenizer.json` through the `tokenizers` library: GPT-2 byte-level BPE, BERT
WordPiece, Llama). A run directory stores its tokenizer with `save_to_dir`, and
`load_from_dir` picks the implementation from the files it finds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from etils import epath

# A run directory's tokenizer: one of these (SentencePiece file, or a folder of HF files).
SENTENCEPIECE_FILE = "tokenizer.model"
HF_TOKENIZER_DIR = "tokenizer"


class TextTokenizer(Protocol):
    """Text <-> token ids, with the special ids and byte accounting the tasks need."""

    @property
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce (specials included)."""

    @property
    def pad_id(self) -> int:
        """Padding id (UserError when the tokenizer has no pad token)."""

    @property
    def unk_id(self) -> int:
        """Unknown-token id."""

    @property
    def bos_id(self) -> int:
        """Beginning-of-document id (the LM pipeline starts each document with it)."""

    @property
    def eos_id(self) -> int:
        """End-of-document id (decoding stops at it)."""

    @property
    def fingerprint(self) -> str:
        """A hash of the tokenizer: equal for equal tokenizers (keys data caches)."""

    @property
    def token_bytes(self) -> np.ndarray:
        """int32 [vocab_size]: UTF-8 bytes each token adds to decoded text (bits per byte)."""

    def piece_id(self, piece: str) -> int:
        """Id of a special piece such as "[CLS]", "[SEP]", "[MASK]" (UserError if absent)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens."""

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids`; special tokens decode to nothing."""

    def save_to_dir(self, directory: str | os.PathLike) -> None:
        """Writes the tokenizer into a run directory (`load_from_dir` reads it back)."""


def load_from_dir(directory: str | os.PathLike) -> TextTokenizer | None:
    """The tokenizer a run directory holds (SentencePiece or Hugging Face), or None."""
    directory = epath.Path(directory)
    if (directory / SENTENCEPIECE_FILE).exists():
        from transformer_jax.data.tokenizer import Tokenizer

        return Tokenizer.load(directory / SENTENCEPIECE_FILE)
    if (directory / HF_TOKENIZER_DIR).is_dir():
        from transformer_jax.data.hf_tokenizer import HFTokenizer

        return HFTokenizer.from_dir(directory / HF_TOKENIZER_DIR)
    return None


def in_dir(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a tokenizer `load_from_dir` reads."""
    directory = epath.Path(directory)
    return (directory / SENTENCEPIECE_FILE).exists() or (directory / HF_TOKENIZER_DIR).is_dir()
