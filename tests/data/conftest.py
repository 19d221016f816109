"""Shared fixtures for data tests: a small real-code tokenizer and a list-backed source."""

import pytest

from transformer_jax.data import sources, tokenizer

VOCAB_SIZE = 512


class ListSource:
    """A `TextSource` over an in-memory list, for pipeline tests."""

    def __init__(self, docs: list[str], split: str = "train", name: str = "list"):
        self.docs = docs
        self.name = name
        self.fingerprint = str(len(docs))
        self.split = split

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, index: int) -> str:
        return self.docs[index]


@pytest.fixture(scope="session")
def stdlib_train() -> sources.StdlibSource:
    return sources.StdlibSource("train")


@pytest.fixture(scope="session")
def stdlib_validation() -> sources.StdlibSource:
    return sources.StdlibSource("validation")


@pytest.fixture(scope="session")
def code_tokenizer(stdlib_train) -> tokenizer.Tokenizer:
    """A 512-piece unigram model on 300k characters of stdlib code (~1 s to train)."""
    docs = (stdlib_train[i] for i in range(0, len(stdlib_train), 7))
    return tokenizer.train_tokenizer(docs, VOCAB_SIZE, max_chars=300_000)
