"""Train/validation splits by a stable hash of each document's key (or stratified by label
over groups of documents), and the source protocol."""

import collections
import hashlib
from collections.abc import Sequence
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


def stratified_split(items: Sequence[tuple[str, str]], validation_fraction: float
                     ) -> dict[str, str]:
    """Assigns whole groups to "train"/"validation" so that every label is in both splits.

    For each label, its groups are visited in the order of a stable hash of their keys and
    moved to "validation" while the label's validation items stay within
    `validation_fraction` of its items; at least one group goes to validation (the smallest,
    when none fits) and at least one stays in train. A group never straddles the splits.

    Args:
      items: one (label, group key) pair per example; a group (e.g. a file) holds examples
        of one label.
      validation_fraction: each label's share of examples to hold out (0: none).

    Returns:
      group key -> "train" or "validation"; the same on every machine and Python run.
    """
    sizes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for label, group in items:
        sizes[label][group] += 1
    assignment: dict[str, str] = {}
    for groups in sizes.values():
        order = sorted(groups, key=lambda g: (hashlib.sha256(g.encode("utf-8")).digest(), g))
        held: list[str] = []
        if validation_fraction > 0 and len(order) > 1:
            budget = validation_fraction * sum(groups.values())
            for group in order:
                if groups[group] <= budget and len(held) < len(order) - 1:
                    held.append(group)
                    budget -= groups[group]
            if not held:
                held = [min(order, key=lambda g: groups[g])]
        for group in order:
            assignment[group] = "validation" if group in held else "train"
    return assignment
