"""Data mixtures: the stream keeps the weights, is deterministic, resumes exactly; bad
mixture configs are one-line errors; per-source eval sums add up to the overall ones."""

import json

import ml_collections
import numpy as np
import pytest

from tests.data.conftest import ListSource
from transformer_jax.data import mixture
from transformer_jax.errors import UserError

SEQ_LEN = 32
BATCH = 4
LETTERS = "abc"
WEIGHTS = (3.0, 2.0, 1.0)


def _parts():
    """Three sources whose documents use one letter each (so a row names its source)."""
    parts = []
    for letter, weight in zip(LETTERS, WEIGHTS, strict=True):
        docs = [" ".join(letter * (1 + (i * 7 + j) % 5) for j in range(3 + i % 13))
                for i in range(30)]
        parts.append((letter, ListSource(docs, name=letter), weight))
    return parts


def _row_source(tokenizer, row: np.ndarray) -> str:
    ids = [int(t) for t in row if t not in (0, tokenizer.bos_id, tokenizer.eos_id)]
    letters = set(tokenizer.decode(ids)) - set(" \n")
    assert len(letters) == 1, letters  # rows never mix sources
    return letters.pop()


def _batches(tokenizer, n: int, state=None, **options):
    iterator = iter(mixture.mixture_dataset(_parts(), tokenizer, seq_len=SEQ_LEN,
                                            batch_size=BATCH, seed=0, **options))
    if state is not None:
        iterator.set_state(state)
    batches = [next(iterator) for _ in range(n)]
    state = json.loads(json.dumps(iterator.get_state()))  # what a checkpoint keeps
    iterator.close()
    return batches, state


@pytest.mark.parametrize("num_shards", [1, 2])
def test_observed_proportions_match_the_weights(code_tokenizer, num_shards):
    batches, _ = _batches(code_tokenizer, 30, num_shards=num_shards)
    rows = [_row_source(code_tokenizer, row) for b in batches for row in b["inputs"]]
    assert all((b["segment_ids"] > 0).all() for b in batches)  # full rows: rows = tokens
    for letter, weight in zip(LETTERS, WEIGHTS, strict=True):
        share = rows.count(letter) / len(rows)
        assert abs(share - weight / sum(WEIGHTS)) <= 2 / len(rows), (letter, share)


def test_resume_equals_a_straight_run_and_the_state_is_per_source(code_tokenizer):
    straight, _ = _batches(code_tokenizer, 8, num_shards=2)
    first, state = _batches(code_tokenizer, 5, num_shards=2)
    rest, _ = _batches(code_tokenizer, 3, state=state, num_shards=2)
    for want, got in zip(straight, first + rest, strict=True):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])
    for shard in state["shards"].values():
        assert sorted(shard["parents"]) == list(LETTERS)  # each source's packing state
    again, _ = _batches(code_tokenizer, 8, num_shards=2)  # deterministic for the seed
    assert all((a["inputs"] == b["inputs"]).all() for a, b in zip(straight, again, strict=True))


def test_eval_batches_take_the_sources_in_turn(code_tokenizer):
    parts = [(name, source) for name, source, _ in _parts()]
    batches = list(mixture.mixture_eval_batches(parts, code_tokenizer, seq_len=SEQ_LEN,
                                                batch_size=BATCH))
    order = [int(b["source"][0]) for b in batches]
    assert order[:6] == [0, 1, 2, 0, 1, 2]
    for b in batches:
        for row, seg in zip(b["inputs"], b["segment_ids"], strict=True):
            if seg.any():
                assert _row_source(code_tokenizer, row) == LETTERS[int(b["source"][0])]
    capped = list(mixture.mixture_eval_batches(parts, code_tokenizer, seq_len=SEQ_LEN,
                                               batch_size=BATCH, max_batches=4))
    assert [int(b["source"][0]) for b in capped] == [0, 1, 2, 0]


def _data(**entries) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"validation_fraction": 0.02, "text_key": "text",
                                      "mixture": entries})


def test_bad_mixtures_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"data.mixture.code.pth is not a source key"):
        mixture.parse(_data(code={"source": "stdlib", "pth": "x", "weight": 1.0}))
    for weight in (0.0, -1.0, None, "2"):
        with pytest.raises(UserError, match=r"data.mixture.code.weight=.*weight > 0"):
            mixture.parse(_data(code={"source": "stdlib", "weight": weight}))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    (entry,) = mixture.parse(_data(notes={"source": "local", "path": str(empty), "weight": 1}))
    with pytest.raises(UserError, match="no text in .*empty.txt") as error:
        mixture.check_splits([entry])
    assert "\n" not in str(error.value)
    (entry,) = mixture.parse(_data(code={"source": "stdlib", "weight": 2}))
    assert entry.config.validation_fraction == 0.02 and entry.weight == 2.0
