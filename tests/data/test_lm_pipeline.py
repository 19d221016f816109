"""LM pipeline: packing never crosses documents, loses no token, resumes exactly, shards."""

import json

import numpy as np
import pytest

from tests.data.conftest import ListSource
from transformer_jax.data import lm_pipeline, sources
from transformer_jax.errors import UserError

SEQ_LEN = 32
BATCH = 4


def _docs(n: int = 40) -> list[str]:
    """Documents from 2 to ~10 rows long, so many are split across rows."""
    return [
        f"def f{i}(x):\n" + "".join(f"    x = x * {j} + {i}\n" for j in range(i % 11))
        for i in range(n)
    ]


def _expected(tokenizer, docs: list[str]) -> list[list[int]]:
    return [[tokenizer.bos_id, *tokenizer.encode(d), tokenizer.eos_id] for d in docs]


def _rows(batches):
    for batch in batches:
        for r in range(len(batch["inputs"])):
            yield {key: batch[key][r] for key in lm_pipeline.BATCH_KEYS}


def _segments(row) -> list[tuple[np.ndarray, np.ndarray]]:
    """Checks one row's layout and returns its (inputs, targets) segments in order."""
    seg, pos = row["segment_ids"], row["positions"]
    used = int((seg > 0).sum())
    assert (seg[used:] == 0).all(), "padding only at the end"
    for key in lm_pipeline.BATCH_KEYS:
        assert (row[key][used:] == 0).all()
    ids = seg[:used]
    assert used == 0 or ids[0] == 1
    assert set(np.diff(ids)) <= {0, 1}, "segments are contiguous and numbered 1, 2, ..."
    out = []
    for s in range(1, int(ids.max(initial=0)) + 1):
        where = np.flatnonzero(seg == s)
        np.testing.assert_array_equal(pos[where], np.arange(len(where)))
        inputs, targets = row["inputs"][where], row["targets"][where]
        np.testing.assert_array_equal(targets[:-1], inputs[1:])  # next token, same document
        out.append((inputs, targets))
    return out


def _documents(batches, bos: int, eos: int) -> list[list[int]]:
    """Rebuilds [bos, tokens..., eos] per document; checks no segment mixes documents."""
    docs, current = [], None
    for row in _rows(batches):
        for k, (inputs, targets) in enumerate(_segments(row)):
            assert (inputs[1:] != bos).all() and (targets[:-1] != eos).all()
            if inputs[0] == bos:
                assert current is None, "a new document began before the last one ended"
                current = []
            else:
                assert current is not None and k == 0, "only a row's first segment continues"
            current.extend(inputs.tolist())
            if targets[-1] == eos:
                docs.append([*current, eos])
                current = None
    assert current is None
    return docs


def _one_pass(source, tokenizer, **kwargs):
    ds = lm_pipeline.lm_dataset(
        source, tokenizer, seq_len=SEQ_LEN, repeat=False, drop_remainder=False,
        **{"seed": 0, "batch_size": BATCH, **kwargs},
    )
    return list(ds)


def test_batch_keys_shapes_dtypes(code_tokenizer):
    ds = lm_pipeline.lm_dataset(ListSource(_docs()), code_tokenizer, seq_len=SEQ_LEN,
                             batch_size=BATCH, seed=0)
    batch = next(iter(ds))
    assert sorted(batch) == sorted(lm_pipeline.BATCH_KEYS)
    for value in batch.values():
        assert value.shape == (BATCH, SEQ_LEN) and value.dtype == np.int32


def test_one_pass_keeps_every_token_in_order_without_crossing_documents(code_tokenizer):
    docs = _docs()
    batches = _one_pass(ListSource(docs), code_tokenizer, shuffle=False)
    tok = code_tokenizer
    assert _documents(batches, tok.bos_id, tok.eos_id) == _expected(tok, docs)
    assert sum(len(ids) - 1 for ids in _expected(tok, docs)) == sum(
        (b["segment_ids"] > 0).sum() for b in batches
    )
    # Rows are full except the very last one (then empty rows pad the last batch): packing
    # wastes nothing.
    used = [(r["segment_ids"] > 0).sum() for r in _rows(batches)]
    last = max(i for i, n in enumerate(used) if n)
    assert all(n == SEQ_LEN for n in used[:last]) and not any(used[last + 1:])
    assert any(len(ids) > 3 * SEQ_LEN for ids in _expected(tok, docs))  # split across rows


def test_shuffle_is_a_seeded_permutation(code_tokenizer):
    docs, tok = _docs(), code_tokenizer
    first = _documents(_one_pass(ListSource(docs), tok, seed=1), tok.bos_id, tok.eos_id)
    assert sorted(first) == sorted(_expected(tok, docs))
    assert first != _expected(tok, docs)
    again = _documents(_one_pass(ListSource(docs), tok, seed=1), tok.bos_id, tok.eos_id)
    other = _documents(_one_pass(ListSource(docs), tok, seed=2), tok.bos_id, tok.eos_id)
    assert again == first and other != first


def _pad_to(batches: list[dict], n: int) -> list[dict]:
    """A finished process keeps yielding all-zero blocks in the trainer; do that here."""
    zeros = {k: np.zeros_like(v) for k, v in batches[0].items()}
    return batches + [zeros] * (n - len(batches))


def test_processes_split_each_global_batch_like_one_process(code_tokenizer):
    """With V shards, process p yields block p of every global batch, whatever the count."""
    source, tok = ListSource(_docs()), code_tokenizer
    single = _one_pass(source, tok, batch_size=3 * BATCH, num_shards=3)
    # Every document once, each shard packed on its own (document i in shard i mod 3).
    shard_docs = sorted(_documents(_one_pass(source, tok, batch_size=BATCH, num_shards=3,
                                             process_index=p, process_count=3),
                                   tok.bos_id, tok.eos_id) for p in range(3))
    per_process = [_one_pass(source, tok, process_index=p, process_count=3) for p in range(3)]
    assert len(single) > 2 and max(len(b) for b in per_process) == len(single)
    for whole, *parts in zip(single, *(_pad_to(b, len(single)) for b in per_process),
                             strict=True):
        for key in lm_pipeline.BATCH_KEYS:
            np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))
    assert sorted(d for docs in shard_docs for d in docs) == sorted(_expected(tok, _docs()))
    # Process 1 of 2 holds shard 1's state; a one-process state resumes it and vice versa.
    one = iter(lm_pipeline.lm_dataset(source, tok, seq_len=SEQ_LEN, seed=1,
                                   batch_size=2 * BATCH, num_shards=2))
    second = iter(lm_pipeline.lm_dataset(source, tok, seq_len=SEQ_LEN, seed=1, batch_size=BATCH,
                                      process_index=1, process_count=2))
    for _ in range(5):
        next(one), next(second)
    assert one.get_state()["shards"]["1"] == second.get_state()["shards"]["1"]
    resumed = iter(lm_pipeline.lm_dataset(source, tok, seq_len=SEQ_LEN, seed=1, batch_size=BATCH,
                                       process_index=1, process_count=2))
    resumed.set_state(one.get_state())
    expected = next(one)
    np.testing.assert_array_equal(next(resumed)["inputs"], expected["inputs"][BATCH:])
    with pytest.raises(UserError, match="has 2 shards but this run has data.num_shards=4"):
        iter(lm_pipeline.lm_dataset(source, tok, seq_len=SEQ_LEN, seed=1, batch_size=BATCH,
                                 num_shards=4)).set_state(one.get_state())
    for it in (one, second, resumed):
        it.close()
    with pytest.raises(UserError, match="has no documents"):
        lm_pipeline.lm_dataset(ListSource([]), tok, seq_len=8, batch_size=2, seed=0)
    with pytest.raises(UserError, match="num_shards=3 must be a multiple of the process count 2"):
        lm_pipeline.lm_dataset(source, tok, seq_len=8, batch_size=3, seed=0, process_count=2,
                            num_shards=3)


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[k], y[k])
        for x, y in zip(a, b, strict=True)
        for k in lm_pipeline.BATCH_KEYS
    )


def test_iterator_state_resumes_exactly_across_epochs(code_tokenizer):
    ds = lm_pipeline.lm_dataset(ListSource(_docs(12)), code_tokenizer, seq_len=SEQ_LEN,
                             batch_size=BATCH, seed=3)
    it = iter(ds)
    for step in range(40):  # ~3 epochs of this corpus; states with and without remainders
        state = it.get_state()
        expected = [next(it) for _ in range(2)]
        if step % 3 == 0:
            # Checkpoints hold the state as JSON; restoring from that must be exact too.
            fresh = iter(ds)
            fresh.set_state(json.loads(json.dumps(state)))
            assert _same([next(fresh) for _ in range(2)], expected), step
            fresh.close()
    it.close()


def test_eval_batches_padded_and_equal_across_processes(code_tokenizer):
    docs, tok = _docs(), code_tokenizer
    source = ListSource(docs, split="validation")
    whole = list(lm_pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=2 * BATCH))
    assert _documents(whole, tok.bos_id, tok.eos_id) == _expected(tok, docs)
    assert (whole[-1]["segment_ids"][-1] == 0).all()  # last batch padded with empty rows
    single = list(lm_pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=2 * BATCH,
                                           num_shards=2))
    per_process = [
        list(lm_pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=BATCH,
                                      process_index=p, process_count=2))
        for p in range(2)
    ]
    # Together exactly the one-process rows of the same shards, every document once.
    assert max(len(b) for b in per_process) == len(single)
    for batch, a, b in zip(single, *(_pad_to(x, len(single)) for x in per_process),
                           strict=True):
        for key in lm_pipeline.BATCH_KEYS:
            np.testing.assert_array_equal(batch[key], np.concatenate([a[key], b[key]]))
    rebuilt = [d for b in per_process for d in _documents(b, tok.bos_id, tok.eos_id)]
    assert sorted(rebuilt) == sorted(_expected(tok, docs))
    # With a collective saying "some process has rows", both yield the same count.
    longest = max(len(b) for b in per_process)
    counts = []
    for p in range(2):
        calls = iter(range(10**6))
        counts.append(len(list(lm_pipeline.lm_eval_batches(
            source, tok, seq_len=SEQ_LEN, batch_size=BATCH, process_index=p, process_count=2,
            any_process=lambda mine, calls=calls: next(calls) < longest))))
    assert counts == [longest, longest]
    limited = list(lm_pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=BATCH,
                                            max_batches=2))
    assert len(limited) == 2


def test_huge_single_line_file_flows_through(code_tokenizer, tmp_path):
    (tmp_path / "huge.txt").write_text("x = 1; " * 430_000)  # 3 MB, no newline
    source = sources.LocalSource(str(tmp_path / "huge.txt"), "train", validation_fraction=0.0)
    assert len(source) == 4  # chunks of at most 1M characters
    batches = list(lm_pipeline.lm_eval_batches(source, code_tokenizer, seq_len=512, batch_size=8,
                                            max_batches=3))
    assert len(batches) == 3 and all((b["segment_ids"] > 0).all() for b in batches)
