"""Encoder-decoder decoding: the cross-attention cache, cached == uncached, greedy/sampling."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.toy_seq2seq import BOS, CONFIG, EOS, trained
from transformer_jax.decoding import seq2seq as seq2seq_decode
from transformer_jax.models.encdec import EncoderDecoder

DECODER = EncoderDecoder(CONFIG.replace(decode=True, deterministic=True))


def test_cross_cache_is_filled_once_and_reused():
    model, params, src = trained()
    tgt = jax.random.randint(jax.random.key(2), (src.shape[0], 6), 4, CONFIG.vocab_size)
    full = model.apply({"params": params}, src, tgt)
    encoded = DECODER.apply({"params": params}, src, method=EncoderDecoder.encode)
    cache = seq2seq_decode.empty_cache(DECODER, src, 6)
    step = jax.jit(functools.partial(seq2seq_decode.decode_step, DECODER, params))
    steps = []
    for t in range(6):
        # Only the first step sees the encoder output; later steps read the cached K/V.
        logits, cache = step(cache, encoded if t == 0 else None, src, tgt[:, t], t)
        steps.append(logits)
    np.testing.assert_allclose(jnp.stack(steps, axis=1), full, atol=1e-5)
    leaves = jax.tree_util.tree_leaves_with_path(cache)
    cross = {jax.tree_util.keystr(p): x for p, x in leaves if "cross_attention" in str(p)}
    assert cross
    for name, x in cross.items():  # keys [.., B, K, S, H], values [.., B, K, H, S]
        assert x.shape[-2 if "cached_key" in name else -1] == src.shape[1], name


def test_empty_cross_cache_is_an_error():
    _, params, src = trained()
    with pytest.raises(ValueError, match="cross-attention cache is empty"):
        DECODER.apply({"params": params}, None, src, src[:, :1],
                      jnp.zeros((src.shape[0], 1), jnp.int32),
                      method=EncoderDecoder.decode, mutable=["cache"])


def test_cached_greedy_equals_uncached_greedy():
    model, params, src = trained()
    out = np.asarray(seq2seq_decode.sample(DECODER, params, src, max_decode_len=9, bos_id=BOS,
                                           eos_id=EOS))
    assert len({tuple(r) for r in out}) > 2  # varied outputs
    # Uncached: the full model on [bos] + output must pick every output token (up to and
    # including EOS) as its argmax.
    prefix = np.concatenate([np.full((len(out), 1), BOS), out[:, :-1]], axis=1)
    full_argmax = np.asarray(jnp.argmax(model.apply({"params": params}, src, prefix), -1))
    for row, ref in zip(out, full_argmax, strict=True):
        assert EOS in row  # finished before the limit, so no EOS was forced
        n = list(row).index(EOS)
        np.testing.assert_array_equal(row[: n + 1], ref[: n + 1])
        assert (row[n + 1:] == 0).all()


def test_sampling_respects_length_limits_and_is_seeded():
    _, params, src = trained()
    kwargs = dict(max_decode_len=9, bos_id=BOS, eos_id=EOS, temperature=2.0, len_a=0.5,
                  len_b=1)
    a = np.asarray(seq2seq_decode.sample(DECODER, params, src, rng=jax.random.key(5), **kwargs))
    b = np.asarray(seq2seq_decode.sample(DECODER, params, src, rng=jax.random.key(5), **kwargs))
    np.testing.assert_array_equal(a, b)
    limits = np.floor(0.5 * (np.asarray(src) != 0).sum(1) + 1).astype(int)
    for row, limit in zip(a, limits, strict=True):
        assert EOS in row[:limit] and (row[limit:] == 0).all()
