"""Token batching: a bounded set of shapes, rows sized by tokens, no token lost, runs of one
bucket, deterministic, resumable, split across processes; less padding than fixed batches."""

import json

import numpy as np
import pytest

from transformer_jax.data import token_batching
from transformer_jax.errors import UserError

S, T = 128, 32
TOKENS = 1024


def _lengths(n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([np.clip(rng.geometric(1 / 30, n), 2, S),
                     np.clip(rng.geometric(1 / 8, n), 2, T)], axis=1)


LENGTHS = _lengths()


def _example(i: int) -> dict[str, np.ndarray]:
    """Example i: its real tokens are all i + 1, then padding (0) up to S / T."""
    s, t = LENGTHS[i]
    row = lambda n, size: np.pad(np.full(n, i + 1, np.int32), (0, size - n))  # noqa: E731
    return {"source": row(s, S), "target_inputs": row(t, T), "targets": row(t, T)}


def _batches(n: int, state=None, **options):
    options = dict(tokens_per_batch=TOKENS, multiple=4, group=2, seed=0) | options
    it = token_batching.TokenBatches(_example, LENGTHS, (S, T), **options)
    if state is not None:
        it.set_state(state)
    out = [next(it) for _ in range(n)]
    state = json.loads(json.dumps(it.get_state()))
    it.close()
    return out, state, it


def test_shapes_rows_and_tokens():
    assert token_batching.boundaries(128) == [16, 32, 64, 128]
    assert token_batching.boundaries(12) == [12]
    batches, _, it = _batches(40)
    shapes = {(b["source"].shape[1], b["targets"].shape[1]) for b in batches}
    assert shapes <= set(it.shapes) and len(it.shapes) == 8 and len(shapes) > 2
    for b in batches:
        s, t = b["source"].shape[1], b["targets"].shape[1]
        rows = len(b["source"])
        assert rows == TOKENS // max(s, t) // 4 * 4 and rows * max(s, t) <= TOKENS
        assert b["target_inputs"].shape == b["targets"].shape == (rows, t)
        for k in range(rows):  # every real token kept: the row is its example's, cut at pads
            example = _example(int(b["source"][k, 0]) - 1)
            assert (b["source"][k] == example["source"][:s]).all()
            assert (example["source"][s:] == 0).all() and (example["targets"][t:] == 0).all()
    # Runs of `group` batches share a bucket (one jitted call stacks them).
    for a, b in zip(batches[::2], batches[1::2], strict=True):
        assert a["source"].shape == b["source"].shape and a["targets"].shape == b["targets"].shape


def test_deterministic_resumable_and_split_across_processes():
    straight, _, it = _batches(it_len := 30)
    assert it.batches_per_epoch < it_len  # crosses into the second epoch
    first, state, _ = _batches(11)
    rest, _, _ = _batches(19, state=state)
    for want, got in zip(straight, first + rest, strict=True):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])
    halves = [_batches(it_len, process_index=p, process_count=2)[0] for p in (0, 1)]
    for want, a, b in zip(straight, *halves, strict=True):
        np.testing.assert_array_equal(want["source"], np.concatenate([a["source"], b["source"]]))
    other, _, _ = _batches(it_len, seed=1)
    assert any(a["source"].shape != b["source"].shape or (a["source"] != b["source"]).any()
               for a, b in zip(straight, other, strict=True))


def test_less_padding_than_fixed_batches():
    batches, _, _ = _batches(60)
    fixed = [{key: np.stack([_example(i)[key] for i in range(j, j + 8)])
              for key in ("source", "targets")} for j in range(0, 480, 8)]
    tokens = token_batching.padding_fraction(batches)
    assert tokens < 0.6 * token_batching.padding_fraction(fixed)


def test_too_few_tokens_is_a_user_error():
    with pytest.raises(UserError, match=r"tokens_per_batch=100 fits no batch .* at least 512"):
        token_batching.TokenBatches(_example, LENGTHS, (S, T), tokens_per_batch=100, multiple=4)
