"""Beam search: beam 1 is greedy, scores are the model's length-normalized log-probabilities,
length limits hold, and cache reordering follows the parent beams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.toy_seq2seq import BOS, CONFIG, EOS, trained
from transformer_jax.decoding import beam_search, repetition
from transformer_jax.decoding import seq2seq as seq2seq_decode
from transformer_jax.errors import UserError
from transformer_jax.models.encdec import EncoderDecoder

DECODER = EncoderDecoder(CONFIG.replace(decode=True, deterministic=True))


def test_beam_1_equals_greedy():
    _, params, src = trained()
    greedy = seq2seq_decode.sample(DECODER, params, src, max_decode_len=9, bos_id=BOS,
                                   eos_id=EOS)
    beam, _ = beam_search.beam_search(DECODER, params, src, beam_size=1, alpha=0.0,
                                      max_decode_len=9, bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(beam, greedy)


def sequence_logprob(model, params, src, out):
    """Sum of log p(token) over each row's tokens up to and including EOS (full forward)."""
    prefix = jnp.concatenate([jnp.full((len(out), 1), BOS), out[:, :-1]], axis=1)
    logp = jax.nn.log_softmax(model.apply({"params": params}, src, prefix))
    token_logp = jnp.take_along_axis(logp, out[..., None], -1)[..., 0]
    lengths = jnp.argmax(out == EOS, axis=1) + 1
    keep = jnp.arange(out.shape[1])[None] < lengths[:, None]
    return jnp.sum(jnp.where(keep, token_logp, 0.0), axis=1), lengths


def test_beam_scores_are_the_models_length_normalized_logprobs():
    model, params, src = trained()
    beam, scores = beam_search.beam_search(DECODER, params, src, beam_size=4, alpha=0.6,
                                           max_decode_len=9, bos_id=BOS, eos_id=EOS)
    logprob, lengths = sequence_logprob(model, params, src, beam)
    np.testing.assert_allclose(scores, logprob / ((5.0 + lengths) / 6.0) ** 0.6, rtol=1e-4)


def test_beam_search_stops_at_the_length_limit():
    _, params, src = trained()
    beam, _ = beam_search.beam_search(DECODER, params, src, beam_size=3, alpha=0.6,
                                      max_decode_len=9, bos_id=BOS, eos_id=EOS, len_a=0.5,
                                      len_b=1)
    limits = np.floor(0.5 * (np.asarray(src) != 0).sum(1) + 1).astype(int)
    for row, limit in zip(np.asarray(beam), limits, strict=True):
        assert EOS in row[:limit] and (row[limit:] == 0).all()
    with pytest.raises(UserError, match="beam_size"):
        beam_search.beam_search(DECODER, params, src, beam_size=0, max_decode_len=9,
                                bos_id=BOS, eos_id=EOS)


def test_reorder_cache_gathers_self_attention_rows_by_parent():
    rows = jnp.arange(6.0)  # B=2, K=3
    scanned = {"layers": {"self_attention": {
        "cached_key": jnp.broadcast_to(rows[None, :, None, None, None], (2, 6, 4, 1, 1)),
        "cache_index": jnp.array([3, 3])},
        "cross_attention": {"cached_key": jnp.broadcast_to(rows[:, None, None, None],
                                                           (6, 5, 1, 1))}}}
    parents = jnp.array([[2, 2, 0], [1, 0, 0]])
    out = beam_search.reorder_cache(scanned, parents)
    np.testing.assert_array_equal(out["layers"]["self_attention"]["cached_key"][1, :, 0, 0, 0],
                                  [2, 2, 0, 4, 3, 3])
    np.testing.assert_array_equal(out["layers"]["self_attention"]["cache_index"], [3, 3])
    np.testing.assert_array_equal(out["layers"]["cross_attention"]["cached_key"],
                                  scanned["layers"]["cross_attention"]["cached_key"])


def ngrams(row: np.ndarray, n: int) -> list[tuple[int, ...]]:
    """The n-grams of an output row up to (not including) its EOS."""
    ids = row.tolist()
    ids = ids[: ids.index(EOS)] if EOS in ids else ids
    return [tuple(ids[j:j + n]) for j in range(len(ids) - n + 1)]


def test_no_repeat_ngram_and_repetition_penalty():
    _, params, _ = trained()
    # Reversing sources that repeat tokens repeats them: the plain search emits repeats.
    src = jnp.array([[5, 5, 5, 5, 6, 6, EOS, 0], [7, 8, 7, 8, 7, 8, EOS, 0],
                     [9, 9, 10, 9, 9, EOS, 0, 0]], jnp.int32)
    search = dict(beam_size=3, alpha=0.6, max_decode_len=9, bos_id=BOS, eos_id=EOS)
    plain, plain_scores = beam_search.beam_search(DECODER, params, src, **search)
    assert any(len(set(ngrams(r, 2))) < len(ngrams(r, 2)) for r in np.asarray(plain))
    for n, penalty in ((1, 1.0), (2, 2.0)):  # the penalty's arithmetic: the test below
        out, _ = beam_search.beam_search(DECODER, params, src, no_repeat_ngram=n,
                                         repetition_penalty=penalty, **search)
        for row in np.asarray(out):
            assert len(set(ngrams(row, n))) == len(ngrams(row, n)), (n, row)
    # Off (penalty 1, n-gram 0) is the plain search exactly.
    off, off_scores = beam_search.beam_search(DECODER, params, src, repetition_penalty=1.0,
                                              no_repeat_ngram=0, **search)
    np.testing.assert_array_equal(off, plain)
    np.testing.assert_array_equal(off_scores, plain_scores)


def test_repetition_penalty_scales_emitted_tokens_only():
    logp = jnp.log(jnp.full((1, 1, 6), 1 / 6))
    seqs = jnp.array([[[4, 2, 4, 5, 0]]])  # emitted so far (step 3): 4 2 4
    out = repetition.penalize_repeats(logp, seqs, jnp.array(3), repetition_penalty=1.5,
                                      no_repeat_ngram=2, neg=-1e7)
    expected = np.log(1 / 6) * np.array([1, 1, 1.5, 1, 1.5, 1])  # 2 and 4 emitted, 5 not yet
    expected[2] = -1e7  # "4 2" was emitted and the last token is 4: 2 would repeat it
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(repetition_penalty=0.9), "--repetition_penalty=0.9 must be >= 1"),
    (dict(no_repeat_ngram=-1), "--no_repeat_ngram=-1 must be >= 0"),
])
def test_repetition_options_out_of_range_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        beam_search.beam_search(DECODER, None, jnp.ones((1, 4), jnp.int32), beam_size=2,
                                max_decode_len=4, bos_id=BOS, eos_id=EOS, **options)
