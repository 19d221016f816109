"""BERT and encoder-decoder on the shared layers: masking and cached decoding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.models.bert import BertForPretraining
from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder

SMALL = dict(vocab_size=101, max_len=32, num_layers=2, d_model=32, num_heads=4, mlp_dim=64,
             dropout_rate=0.0, attention_dropout_rate=0.0)


def ids(shape, seed):
    return jax.random.randint(jax.random.key(seed), shape, 4, 101)


def test_bert_is_bidirectional_and_ignores_padding():
    model = BertForPretraining(from_preset("bert_tiny", **SMALL))
    tokens = ids((2, 12), 0).at[:, 9:].set(0)  # last 3 positions are padding
    params = nn.unbox(model.init(jax.random.key(0), tokens)["params"])
    mlm, nsp = model.apply({"params": params}, tokens)
    assert mlm.shape == (2, 12, 101) and nsp.shape == (2, 2)
    later = tokens.at[:, 7].set(5)
    mlm2, _ = model.apply({"params": params}, later)
    assert not np.allclose(mlm[:, :7], mlm2[:, :7], atol=1e-4)  # earlier tokens see later ones
    # Padding is invisible: real positions are unchanged whatever the padding length.
    mlm3, nsp3 = model.apply({"params": params}, jnp.pad(tokens[:, :9], ((0, 0), (0, 7))))
    np.testing.assert_allclose(mlm3[:, :9], mlm[:, :9], atol=1e-5)
    np.testing.assert_allclose(nsp3, nsp, atol=1e-5)


def make_encdec(**overrides):
    cfg = from_preset("transformer_tiny", **{**SMALL, **overrides})
    model = EncoderDecoder(cfg)
    src, tgt = ids((2, 10), 1).at[1, 7:].set(0), ids((2, 8), 2)
    params = nn.unbox(model.init(jax.random.key(0), src, tgt)["params"])
    return cfg, model, params, src, tgt


def test_cross_attention_respects_source_padding():
    _, model, params, src, tgt = make_encdec()
    out = model.apply({"params": params}, src, tgt)
    longer = jnp.pad(src, ((0, 0), (0, 5)))
    np.testing.assert_allclose(model.apply({"params": params}, longer, tgt), out, atol=1e-5)
    changed = src.at[0, 3].set(7)  # a real source token matters
    assert not np.allclose(model.apply({"params": params}, changed, tgt)[0], out[0], atol=1e-4)


def test_encdec_cached_decoding_matches_full_forward():
    cfg, model, params, src, tgt = make_encdec()
    full = model.apply({"params": params}, src, tgt)
    decoder = EncoderDecoder(cfg.replace(decode=True, deterministic=True))
    encoded = decoder.apply({"params": params}, src, method=EncoderDecoder.encode)
    cache = decoder.init(jax.random.key(0), src, jnp.zeros((2, 8), jnp.int32))["cache"]
    steps = []
    for t in range(8):
        logits, v = decoder.apply(
            {"params": params, "cache": cache}, encoded, src, tgt[:, t:t + 1],
            jnp.full((2, 1), t), method=EncoderDecoder.decode, mutable=["cache"],
        )
        cache = v["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)
