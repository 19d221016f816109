"""Train/validation splits by a stable hash of each document's key, and the source protocol."""

import hashlib
from typing import Protocol

from transformer_jax.errors import UserError

SPLITS = ("train", "validation")


class TextSource(Protocol):
    """What the tokenizer and pipeline need from a source."""

    name: str
    fingerprint: str
    split: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> str: ...


def split_of(key: str, validation_fraction: float) -> str:
    """Assigns a document to "train" or "validation" from a stable hash of its key.

    Args:
      key: the document's identity, e.g. its path relative to the corpus root.
      validation_fraction: the expected share of keys that land in "validation".

    Returns:
      "validation" or "train"; the same on every machine and Python run (`hash()` is salted
      per process, so sha256 is used instead).
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return "validation" if position < validation_fraction else "train"


def check_split(split: str, validation_fraction: float) -> None:
    """Raises `UserError` unless split is "train"/"validation" and the fraction is in [0, 1)."""
    if split not in SPLITS:
        raise UserError(f"split={split!r} is unknown; use one of {SPLITS}")
    if not 0.0 <= validation_fraction < 1.0:
        raise UserError(
            f"validation_fraction={validation_fraction} must be in [0, 1); 0.02 is a good default"
        )
