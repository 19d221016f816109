"""SentencePiece tokenizer that is lossless on source code, with an on-disk training cache.

Lossless means `decode(encode(text)) == text` for any string. SentencePiece gets there with:
identity normalization, no whitespace collapsing and no dummy prefix (indentation and blank
lines survive), byte fallback (any character, even NUL, becomes byte pieces instead of <unk>),
and whitespace-only pieces allowed (runs of spaces become single tokens). Newlines need no
special symbol: `sentence_iterator` sentences may contain newlines, which then are ordinary
characters of pieces (a docstring's closing quotes plus newline is one piece). The one
character SentencePiece cannot round-trip is its own whitespace marker U+2581 ("▁"), which it
decodes as a space; `encode` emits that character's UTF-8 bytes as byte pieces instead.

Ids: pad=0, unk=1, bos=2, eos=3, then any user-defined symbols, then 256 byte pieces.
"""

import functools
import hashlib
import io
import json
import os
import pathlib
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence

import grain
import numpy as np
import sentencepiece as spm
from absl import logging
from etils import epath

from transformer_jax.data.chunking import MAX_DOC_CHARS, split_text
from transformer_jax.data.splits import TextSource
from transformer_jax.errors import UserError

_META = "\u2581"  # SentencePiece's whitespace marker.
_SENTENCE_CHARS = 4096  # Training sentences are cut to this; 4 UTF-8 bytes/char max below.
_MAX_SENTENCE_BYTES = 4 * _SENTENCE_CHARS
# SentencePiece's result depends on its thread count; a constant gives every host the same model.
_TRAIN_THREADS = 4
# Unigram training time grows with the text; a small vocabulary needs little text to fit.
_CHARS_PER_PIECE = 2_000
_MAX_TRAIN_CHARS = 6_000_000
_MODEL_TYPES = ("unigram", "bpe")


class Tokenizer:
    """A SentencePiece model plus the byte accounting needed for bits per byte."""

    def __init__(self, model_proto: bytes):
        """Wraps a serialized SentencePiece model (as written by `train_tokenizer`)."""
        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        # Byte pieces spelling U+2581, so `encode` can keep that character lossless (models
        # trained elsewhere, e.g. T5's spiece.model, may have none: then "▁" is not kept).
        self._meta_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in _META.encode()]
        if not all(self._sp.is_byte(i) for i in self._meta_ids):
            self._meta_ids = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Reads a `.model` file written by `save` (a local path or a URL, e.g. gs://)."""
        path = epath.Path(path)
        if not path.is_file():
            raise UserError(f"tokenizer file {path} does not exist; check the path")
        try:
            return cls(path.read_bytes())
        except (RuntimeError, ValueError) as e:
            raise UserError(f"{path} is not a usable tokenizer ({e}); delete it to retrain") from e

    def save(self, path: str | os.PathLike) -> None:
        """Writes the model atomically: a killed writer leaves the old file or none.

        A URL (gs://...) is written as one object, which buckets store atomically.
        """
        if "://" in os.fspath(path):
            epath.Path(path).write_bytes(self._proto)
            return
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as f:
            try:
                f.write(self._proto)
            except BaseException:
                os.unlink(f.name)
                raise
        os.replace(f.name, path)

    def save_to_dir(self, directory: str | os.PathLike) -> None:
        """Writes the model into a run directory (`text_tokenizer.load_from_dir` reads it)."""
        from transformer_jax.data.text_tokenizer import SENTENCEPIECE_FILE

        self.save(epath.Path(directory) / SENTENCEPIECE_FILE)

    def serialized_model(self) -> bytes:
        """The SentencePiece ModelProto bytes (what `save` writes)."""
        return self._proto

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the model: equal for equal tokenizers (a key for data built with it)."""
        return hashlib.sha256(self._proto).hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials and byte pieces included."""
        return self._sp.vocab_size()

    @property
    def pad_id(self) -> int:
        """Padding id (0); decodes to nothing."""
        return self._sp.pad_id()

    @property
    def unk_id(self) -> int:
        """Unknown-piece id (1); never produced, thanks to byte fallback."""
        return self._sp.unk_id()

    @property
    def bos_id(self) -> int:
        """Beginning-of-document id (2)."""
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        """End-of-document id (3)."""
        return self._sp.eos_id()

    def piece_id(self, piece: str) -> int:
        """Id of a user-defined symbol such as "[MASK]" (UserError if the vocab lacks it)."""
        i = self._sp.piece_to_id(piece)
        if i == self.unk_id and piece != self._sp.id_to_piece(self.unk_id):
            raise UserError(
                f"the tokenizer has no piece {piece!r}: train it with "
                f"user_defined_symbols including {piece!r} (delete the cached/workdir tokenizer)"
            )
        return i

    def piece_text(self, i: int) -> str:
        """The piece of id `i` for display, "▁" shown as a space ("<0x0A>" for a byte piece)."""
        return self._sp.id_to_piece(int(i)).replace(_META, " ")

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without bos/eos.

        Long text is encoded in `MAX_DOC_CHARS` pieces: SentencePiece's lattice for one 20 MB
        string needs over 1 GB.
        """
        ids: list[int] = []
        for chunk in split_text(text, MAX_DOC_CHARS):
            if self._meta_ids is None:
                ids.extend(self._sp.encode(chunk))
                continue
            for i, part in enumerate(chunk.split(_META)):
                if i:
                    ids.extend(self._meta_ids)
                ids.extend(self._sp.encode(part))
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids` (a list or 1-D array); pad/bos/eos decode to nothing."""
        return self._sp.decode(np.asarray(ids, dtype=np.int64).tolist())

    @functools.cached_property
    def token_bytes(self) -> np.ndarray:
        """int32 [vocab_size]: UTF-8 bytes each token adds to decoded text.

        0 for pad/unk/bos/eos, 1 for byte pieces, else the piece's length with "▁" as a space.
        `token_bytes[encode(text)].sum() == len(text.encode())`, the denominator of bits/byte.
        """
        sizes = np.zeros(self.vocab_size, dtype=np.int32)
        for i in range(self.vocab_size):
            if self._sp.is_byte(i):
                sizes[i] = 1
            elif not (self._sp.is_control(i) or self._sp.is_unknown(i) or self._sp.is_unused(i)):
                sizes[i] = len(self._sp.id_to_piece(i).replace(_META, " ").encode("utf-8"))
        return sizes


def _resolve_options(
    vocab_size: int,
    model_type: str,
    max_chars: int | None,
    user_defined_symbols: Sequence[str],
) -> dict:
    """Checks training options and fills in the default `max_chars`."""
    if model_type not in _MODEL_TYPES:
        raise UserError(
            f"tokenizer model_type={model_type!r} is unknown; use one of {_MODEL_TYPES}"
        )
    if max_chars is None:
        max_chars = min(_MAX_TRAIN_CHARS, _CHARS_PER_PIECE * vocab_size)
    return {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "max_chars": max_chars,
        "user_defined_symbols": list(user_defined_symbols),
    }


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    model_type: str = "unigram",
    max_chars: int | None = None,
    user_defined_symbols: Sequence[str] = (),
) -> Tokenizer:
    """Trains a lossless SentencePiece model in memory.

    Args:
      texts: documents, consumed in order until `max_chars` characters are taken; pass them in
        a deterministic, well-mixed order (as `load_or_train` does).
      vocab_size: exact vocabulary size, including 4 special ids, the user-defined symbols and
        256 byte pieces (so at least ~350 for code).
      model_type: "unigram" (default; better compression) or "bpe" (faster to train).
      max_chars: training sample size; default min(6M, 2000 * vocab_size) characters, which
        keeps an 8192-piece unigram model on the stdlib under ~15 s on 2 cores.
      user_defined_symbols: extra pieces that are always single tokens, e.g. "[MASK]".

    Returns:
      The trained `Tokenizer`.
    """
    options = _resolve_options(vocab_size, model_type, max_chars, user_defined_symbols)
    taken = 0

    def sentences() -> Iterator[str]:
        # Lines are kept whole where possible so pieces like "\n    " can be learned, and cut
        # below max_sentence_length, past which SentencePiece silently drops a sentence.
        nonlocal taken
        for text in texts:
            for piece in split_text(text, _SENTENCE_CHARS):
                if piece:
                    yield piece
                    taken += len(piece)
                    if taken >= options["max_chars"]:
                        return

    model = io.BytesIO()
    start = time.perf_counter()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            max_sentence_length=_MAX_SENTENCE_BYTES,
            input_sentence_size=0,  # Use every sentence given: the sample is already capped.
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            user_defined_symbols=options["user_defined_symbols"],
            num_threads=_TRAIN_THREADS,
            minloglevel=1,
        )
    except RuntimeError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"SentencePiece cannot train a {model_type} tokenizer with vocab_size={vocab_size} on "
            f"{taken} characters: {reason}"
        ) from e
    logging.info(
        "trained a %d-piece %s tokenizer on %d characters in %.1f s",
        vocab_size, model_type, taken, time.perf_counter() - start,
    )
    return Tokenizer(model.getvalue())


def default_cache_dir() -> pathlib.Path:
    """`$TRANSFORMER_JAX_CACHE`, else ~/.cache/transformer_jax."""
    return pathlib.Path(
        os.environ.get("TRANSFORMER_JAX_CACHE") or "~/.cache/transformer_jax"
    ).expanduser()


def load_or_train(
    source: TextSource,
    vocab_size: int,
    cache_dir: str | os.PathLike | None = None,
    *,
    model_type: str = "unigram",
    max_chars: int | None = None,
    user_defined_symbols: Sequence[str] = (),
) -> Tokenizer:
    """The cached tokenizer for (source, vocab_size, options), training it on first use.

    Args:
      source: a "train" split source; its `name` and `fingerprint` key the cache.
      vocab_size: exact vocabulary size.
      cache_dir: where models are kept; default `default_cache_dir()`.
      model_type: see `train_tokenizer`.
      max_chars: see `train_tokenizer`.
      user_defined_symbols: see `train_tokenizer`.

    Returns:
      The tokenizer, loaded from `<cache_dir>/<name>-<vocab_size>-<hash>.model` or trained on
      a seeded shuffle of the source's documents and written there.
    """
    if source.split != "train":
        raise ValueError(f"tokenizers train on the train split, got split={source.split!r}")
    options = _resolve_options(vocab_size, model_type, max_chars, user_defined_symbols)
    key = json.dumps(
        {"name": source.name, "fingerprint": source.fingerprint, **options}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    cache_dir = pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", source.name)
    path = cache_dir / f"{safe_name}-{vocab_size}-{digest}.model"
    if path.is_file():
        return Tokenizer.load(path)
    # Visible at the default verbosity: on first use this is the start-up's longest step.
    logging.warning("training a %d-piece SentencePiece tokenizer on %s (first use only; "
                    "cached at %s)", vocab_size, source.name, path)
    # Grain's shuffle is lazy (no permutation array), so this works for any corpus size.
    documents = grain.MapDataset.source(source).shuffle(seed=0)
    tokenizer = train_tokenizer((documents[i] for i in range(len(documents))), **options)
    try:
        tokenizer.save(path)
    except OSError as e:
        raise UserError(
            f"cannot write the tokenizer cache {path} ({e}); set $TRANSFORMER_JAX_CACHE or "
            "data.tokenizer_cache_dir to a writable directory"
        ) from e
    return tokenizer
