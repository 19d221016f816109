"""Token-classification data: sentences of (word, tag) pairs and sub-token aligned features.

Sources (`data.source`):
- `stdlib`: the offline default: every token of blocks of `data.segment_lines` source lines
  of stdlib files tagged with its Python token type from the `tokenize` module (NAME,
  KEYWORD, OP, STRING, NUMBER, COMMENT, ...); split by a hash of each file's path.
- `local`: CoNLL-format files (one "word ... tag" line per word, the tag in the last column,
  blank lines between sentences, `-DOCSTART-` lines ignored); `data.path` is the training
  file, `data.validation_path` the evaluation file.
- `tfds`: `conll2003` (tokens + ner tags).

Features: `[CLS] sub-tokens of each word [SEP]`; each word is encoded on its own and its tag
sits on its first sub-token (weight 1), the other sub-tokens have weight 0. Words past
`seq_len` are cut off (evaluation predicts "O" for them).
"""

from __future__ import annotations

import io
import keyword
import pathlib
import tokenize
from typing import NamedTuple

import ml_collections
import numpy as np

from transformer_jax.data import sources, tfds_source
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError

_SKIPPED = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
# What `python_tags` emits (f-string pieces are tokens of their own from Python 3.12).
PYTHON_TAGS = sorted({"COMMENT", "ERRORTOKEN", "KEYWORD", "NAME", "NUMBER", "OP", "STRING"}
                     | {n for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                        if hasattr(tokenize, n)})


class Sentence(NamedTuple):
    """Words and their tags (same length)."""

    words: list[str]
    tags: list[str]


def python_tags(text: str, first_line: int, end_line: int) -> Sentence:
    """Python tokens starting on lines [first_line, end_line) of `text`, with their types.

    The file is tokenized from its start (a block may begin inside a string); tokenizer errors
    end the block early (a few stdlib files are deliberately broken).
    """
    words, tags = [], []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            line = token.start[0] - 1
            if line >= end_line:
                break
            if line < first_line or token.type in _SKIPPED:
                continue
            name = tokenize.tok_name[token.type]
            if token.type == tokenize.NAME and (keyword.iskeyword(token.string)
                                                or keyword.issoftkeyword(token.string)):
                name = "KEYWORD"
            words.append(token.string)
            tags.append(name)
    except (tokenize.TokenError, SyntaxError):
        pass
    return Sentence(words, tags)


class StdlibTagging:
    """Blocks of stdlib source lines as tagged sentences (tokenized lazily on access)."""

    def __init__(self, split: str, validation_fraction: float, segment_lines: int):
        self.source = sources.StdlibSource(split, validation_fraction=validation_fraction)
        self.blocks = np.asarray([(doc, start) for doc in range(len(self.source))
                                  for start in range(0, self.source[doc].count("\n") + 1,
                                                     segment_lines)], np.int64)
        self.segment_lines = segment_lines
        self.labels = PYTHON_TAGS

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> Sentence:
        doc, start = self.blocks[index]
        return python_tags(self.source[int(doc)], int(start), int(start) + self.segment_lines)


def read_conll(path: pathlib.Path) -> list[Sentence]:
    """Sentences of a CoNLL file (word first column, tag last column)."""
    if not path.is_file():
        raise UserError(f"CoNLL file {str(path)!r} does not exist")
    sentences, words, tags = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append(Sentence(words, tags))
            words, tags = [], []
            continue
        if len(columns) < 2:
            raise UserError(f"{path}:{number}: expected 'word ... tag', got {line!r}")
        words.append(columns[0])
        tags.append(columns[-1])
    if words:
        sentences.append(Sentence(words, tags))
    if not sentences:
        raise UserError(f"{path} has no sentences; write one 'word tag' line per word")
    return sentences


class TaggedSentences:
    """One split's sentences plus the tag set (a random-access sequence of `Sentence`)."""

    def __init__(self, sentences, labels: list[str], where: str):
        if not len(sentences):
            raise UserError(f"{where} has no sentences")
        self.sentences, self.labels, self.where = sentences, labels, where

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, index: int) -> Sentence:
        return self.sentences[index]

    def tag_id(self, tag: str) -> int:
        """Id of `tag`; UserError for a tag outside the tag set."""
        try:
            return self.labels.index(tag)
        except ValueError:
            raise UserError(f"{self.where}: tag {tag!r} is not in the tag set {self.labels} "
                            "(taken from the training data)") from None


def make_sentences(data: ml_collections.ConfigDict, split: str,
                   labels: list[str] | None = None) -> TaggedSentences:
    """The tagged sentences of `split` for the config's `data` section."""
    if data.source == "stdlib":
        source = StdlibTagging(split, data.validation_fraction, data.segment_lines)
        return TaggedSentences(source, labels or source.labels, f"stdlib ({split})")
    if data.source == "tfds":
        rows, info, tfds_split = tfds_source.open_split(data.tfds_name, split,
                                                        data.tfds_data_dir or None)
        names = list(info.features["ner"].feature.names)
        sentences = [Sentence([w.decode() for w in row["tokens"]],
                              [names[int(t)] for t in row["ner"]])
                     for row in (rows[i] for i in range(len(rows)))]
        return TaggedSentences(sentences, labels or names, f"{data.tfds_name}:{tfds_split}")
    if data.source == "local":
        path = data.path if split == "train" else data.validation_path
        if not path:
            raise UserError(f"data.{'path' if split == 'train' else 'validation_path'} is "
                            "empty; set it to a CoNLL file")
        sentences = read_conll(pathlib.Path(path).expanduser())
        if labels is None:
            train = sentences if split == "train" else read_conll(
                pathlib.Path(data.path).expanduser())
            labels = sorted({t for s in train for t in s.tags} | {"O"})
        result = TaggedSentences(sentences, labels, path)
        for sentence in sentences:
            for tag in sentence.tags:
                result.tag_id(tag)
        return result
    raise UserError(f"data.source={data.source!r} is unknown; use 'stdlib', 'local' or 'tfds'")


class TaggingFeatures:
    """Random-access features of `TaggedSentences` (a Grain source).

    Each example: `tokens` int32 [T], `labels` int32 [T] (the word's tag id at its first
    sub-token), `label_weights` float32 [T] (1 at first sub-tokens), `word_count` int32 []
    (words that fit).
    """

    def __init__(self, sentences: TaggedSentences, tokenizer: TextTokenizer, seq_len: int):
        self.sentences, self.tokenizer, self.seq_len = sentences, tokenizer, seq_len
        self.cls, self.sep = tokenizer.piece_id("[CLS]"), tokenizer.piece_id("[SEP]")

    def __len__(self) -> int:
        return len(self.sentences)

    def featurize(self, words: list[str], tag_ids: list[int] | None = None
                  ) -> dict[str, np.ndarray]:
        """Sub-token features of `words` (tags all 0 when `tag_ids` is None)."""
        ids, labels, weights, count = [self.cls], [0], [0.0], 0
        for i, word in enumerate(words):
            pieces = self.tokenizer.encode(word) or [self.tokenizer.unk_id]
            if len(ids) + len(pieces) > self.seq_len - 1:
                break
            ids.extend(pieces)
            labels.extend([tag_ids[i] if tag_ids else 0] + [0] * (len(pieces) - 1))
            weights.extend([1.0] + [0.0] * (len(pieces) - 1))
            count += 1
        ids.append(self.sep)
        pad = self.seq_len - len(ids)
        return {"tokens": np.pad(ids, (0, pad)).astype(np.int32),
                "labels": np.pad(labels, (0, pad + 1)).astype(np.int32),
                "label_weights": np.pad(weights, (0, pad + 1)).astype(np.float32),
                "word_count": np.asarray(count, np.int32)}

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        sentence = self.sentences[index]
        return self.featurize(sentence.words, [self.sentences.tag_id(t) for t in sentence.tags])
