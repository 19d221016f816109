"""Data: text sources, a lossless SentencePiece tokenizer, Grain LM pipelines with packing."""

from transformer_jax.data.lm_pipeline import BATCH_KEYS, lm_dataset, lm_eval_batches
from transformer_jax.data.sources import (
    LocalSource,
    StdlibSource,
    TextSource,
    TfdsSource,
    make_source,
    split_of,
    stdlib_files,
)
from transformer_jax.data.tokenizer import Tokenizer, load_or_train, train_tokenizer

__all__ = [
    "BATCH_KEYS",
    "LocalSource",
    "StdlibSource",
    "TextSource",
    "TfdsSource",
    "Tokenizer",
    "lm_dataset",
    "lm_eval_batches",
    "load_or_train",
    "make_source",
    "split_of",
    "stdlib_files",
    "train_tokenizer",
]
