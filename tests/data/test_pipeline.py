"""LM pipeline: packing never crosses documents, loses no token, resumes exactly, shards."""

import grain
import numpy as np
import pytest
from etils import epath

from tests.data.conftest import ListSource
from transformer_jax.data import pipeline, sources
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
            yield {key: batch[key][r] for key in pipeline.BATCH_KEYS}


def _segments(row) -> list[tuple[np.ndarray, np.ndarray]]:
    """Checks one row's layout and returns its (inputs, targets) segments in order."""
    seg, pos = row["segment_ids"], row["positions"]
    used = int((seg > 0).sum())
    assert (seg[used:] == 0).all(), "padding only at the end"
    for key in pipeline.BATCH_KEYS:
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
    ds = pipeline.lm_dataset(
        source, tokenizer, seq_len=SEQ_LEN, repeat=False, drop_remainder=False,
        **{"seed": 0, "batch_size": BATCH, **kwargs},
    )
    return list(ds)


def test_batch_keys_shapes_dtypes(code_tokenizer):
    ds = pipeline.lm_dataset(ListSource(_docs()), code_tokenizer, seq_len=SEQ_LEN,
                             batch_size=BATCH, seed=0)
    batch = next(iter(ds))
    assert sorted(batch) == sorted(pipeline.BATCH_KEYS)
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
    # Rows are full except the very last one: packing wastes nothing.
    rows = list(_rows(batches))
    assert all((r["segment_ids"] > 0).all() for r in rows[:-1])
    assert any(len(ids) > 3 * SEQ_LEN for ids in _expected(tok, docs))  # split across rows


def test_shuffle_is_a_seeded_permutation(code_tokenizer):
    docs, tok = _docs(), code_tokenizer
    first = _documents(_one_pass(ListSource(docs), tok, seed=1), tok.bos_id, tok.eos_id)
    assert sorted(first) == sorted(_expected(tok, docs))
    assert first != _expected(tok, docs)
    again = _documents(_one_pass(ListSource(docs), tok, seed=1), tok.bos_id, tok.eos_id)
    other = _documents(_one_pass(ListSource(docs), tok, seed=2), tok.bos_id, tok.eos_id)
    assert again == first and other != first


def test_processes_split_each_global_batch_like_one_process(code_tokenizer):
    """Process p yields block p of every global batch, so data never depends on the count."""
    source, tok = ListSource(_docs()), code_tokenizer
    single = _one_pass(source, tok, batch_size=3 * BATCH)
    per_process = [_one_pass(source, tok, process_index=p, process_count=3) for p in range(3)]
    assert len(single) > 2 and all(len(batches) == len(single) for batches in per_process)
    for whole, *parts in zip(single, *per_process, strict=True):
        for key in pipeline.BATCH_KEYS:
            np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))
    # The iterator state is that of the shared global stream: any process count resumes it.
    iterators = [iter(pipeline.lm_dataset(source, tok, seq_len=SEQ_LEN, seed=1, **shape))
                 for shape in ({"batch_size": 2 * BATCH},
                               {"batch_size": BATCH, "process_index": 1, "process_count": 2})]
    for it in iterators:
        for _ in range(5):
            next(it)
    assert iterators[0].get_state() == iterators[1].get_state()
    for it in iterators:
        it.close()
    with pytest.raises(UserError, match="has no documents"):
        pipeline.lm_dataset(ListSource([]), tok, seq_len=8, batch_size=2, seed=0)


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[k], y[k])
        for x, y in zip(a, b, strict=True)
        for k in pipeline.BATCH_KEYS
    )


def test_iterator_state_resumes_exactly_across_epochs(code_tokenizer, tmp_path):
    ds = pipeline.lm_dataset(ListSource(_docs(12)), code_tokenizer, seq_len=SEQ_LEN,
                             batch_size=BATCH, seed=3)
    it = iter(ds)
    # grain.checkpoint writes the state as JSON; restoring from that must be exact too.
    handler = grain.checkpoint.CheckpointHandler()
    for step in range(40):  # ~3 epochs of this corpus; states with and without remainders
        state = it.get_state()
        if step % 3 == 0:
            (tmp_path / str(step)).mkdir()
            handler.save(epath.Path(tmp_path / str(step)), item=it)
        expected = [next(it) for _ in range(2)]
        if step % 3 == 0:
            fresh = iter(ds)
            fresh.set_state(state)
            assert _same([next(fresh) for _ in range(2)], expected), step
            fresh.close()
            from_json = handler.restore(epath.Path(tmp_path / str(step)), item=iter(ds))
            assert _same([next(from_json) for _ in range(2)], expected), step
            from_json.close()
    it.close()


def test_eval_batches_padded_and_equal_across_processes(code_tokenizer):
    docs, tok = _docs(), code_tokenizer
    source = ListSource(docs, split="validation")
    single = list(pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=2 * BATCH))
    assert _documents(single, tok.bos_id, tok.eos_id) == _expected(tok, docs)
    assert (single[-1]["segment_ids"][-1] == 0).all()  # last batch padded with empty rows
    per_process = [
        list(pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=BATCH,
                                      process_index=p, process_count=2))
        for p in range(2)
    ]
    # Same number of batches everywhere, and together exactly the single-process rows.
    assert len(per_process[0]) == len(per_process[1]) == len(single)
    for whole, a, b in zip(single, *per_process, strict=True):
        for key in pipeline.BATCH_KEYS:
            np.testing.assert_array_equal(whole[key], np.concatenate([a[key], b[key]]))
    limited = list(pipeline.lm_eval_batches(source, tok, seq_len=SEQ_LEN, batch_size=BATCH,
                                            max_batches=2))
    assert len(limited) == 2


def test_huge_single_line_file_flows_through(code_tokenizer, tmp_path):
    (tmp_path / "huge.txt").write_text("x = 1; " * 430_000)  # 3 MB, no newline
    source = sources.LocalSource(str(tmp_path / "huge.txt"), "train", validation_fraction=0.0)
    assert len(source) == 4  # chunks of at most 1M characters
    batches = list(pipeline.lm_eval_batches(source, code_tokenizer, seq_len=512, batch_size=8,
                                            max_batches=3))
    assert len(batches) == 3 and all((b["segment_ids"] > 0).all() for b in batches)
