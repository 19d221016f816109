"""GPT model properties: causality, packing isolation, KV-cache decode, scan == unrolled."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer_jax.decoding import lm as decode
from transformer_jax.decoding import loop as decoding_loop
from transformer_jax.decoding.lm import generate
from transformer_jax.models.config import from_preset
from transformer_jax.models.gpt import GPT
from transformer_jax.models.stack import unscan_params

SMALL = dict(num_layers=2, d_model=32, num_heads=4, mlp_dim=64, vocab_size=97, max_len=32)
VARIANTS = {
    "gpt2": {},
    "rope_gqa_swiglu_rms": dict(position="rope", num_kv_heads=2, activation="swiglu",
                                norm="rmsnorm", use_bias=False, tie_embeddings=False),
    "post_ln_sinusoidal": dict(pre_ln=False, final_norm=False, position="sinusoidal"),
}


def make(variant="gpt2", **overrides):
    cfg = from_preset("gpt_tiny", **{**SMALL, **VARIANTS[variant], **overrides})
    model = GPT(cfg)
    params = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"])
    return cfg, model, params


def tokens(shape, seed=0, vocab=97):
    return jax.random.randint(jax.random.key(seed), shape, 4, vocab)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_causal(variant):
    _, model, params = make(variant)
    x = tokens((2, 16))
    y = x.at[:, 10].set((x[:, 10] + 1) % 97)
    a, b = model.apply({"params": params}, x), model.apply({"params": params}, y)
    np.testing.assert_allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not np.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_packed_documents_do_not_see_each_other(variant):
    _, model, params = make(variant)
    doc_a, doc_b = tokens((1, 10), 1), tokens((1, 6), 2)
    packed = jnp.concatenate([doc_a, doc_b], axis=1)
    segment_ids = jnp.array([[1] * 10 + [2] * 6])
    positions = jnp.array([list(range(10)) + list(range(6))])
    out = model.apply({"params": params}, packed, positions=positions, segment_ids=segment_ids)
    alone_a = model.apply({"params": params}, doc_a)
    alone_b = model.apply({"params": params}, doc_b)
    np.testing.assert_allclose(out[:, :10], alone_a, atol=1e-5)
    np.testing.assert_allclose(out[:, 10:], alone_b, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_kv_cache_decode_matches_full_forward(variant):
    cfg, model, params = make(variant)
    x = tokens((2, 12))
    full = model.apply({"params": params}, x)
    decoder = GPT(cfg.replace(decode=True, deterministic=True))
    cache = decoder.init(jax.random.key(0), jnp.zeros((2, 12), jnp.int32))["cache"]
    # Prefill 5 tokens as one chunk, then one token at a time.
    pos = jnp.broadcast_to(jnp.arange(5), (2, 5))
    logits, v = decoder.apply({"params": params, "cache": cache}, x[:, :5], positions=pos,
                              mutable=["cache"])
    steps = [logits]
    for t in range(5, 12):
        logits, v = decoder.apply({"params": params, "cache": v["cache"]}, x[:, t:t + 1],
                                  positions=jnp.full((2, 1), t), mutable=["cache"])
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)


def test_greedy_generate_matches_argmax_of_full_forward():
    cfg, model, params = make("rope_gqa_swiglu_rms")
    prompt = tokens((2, 4))
    new = generate(GPT(cfg.replace(decode=True, deterministic=True)), params, prompt,
                   max_new_tokens=6, temperature=0.0)
    seq = prompt
    for _ in range(6):
        nxt = jnp.argmax(model.apply({"params": params}, seq)[:, -1], axis=-1)
        seq = jnp.concatenate([seq, nxt[:, None].astype(seq.dtype)], axis=1)
    np.testing.assert_array_equal(new, seq[:, 4:])


def test_sampling_respects_top_k_and_is_seeded():
    cfg, _, params = make()
    decoder = GPT(cfg.replace(decode=True, deterministic=True))
    prompt = tokens((1, 3))
    a = generate(decoder, params, prompt, max_new_tokens=8, rng=jax.random.key(1), top_k=1)
    greedy = generate(decoder, params, prompt, max_new_tokens=8, temperature=0.0)
    np.testing.assert_array_equal(a, greedy)  # top_k=1 is greedy whatever the temperature
    s1 = generate(decoder, params, prompt, max_new_tokens=8, rng=jax.random.key(3),
                  temperature=2.0)
    s2 = generate(decoder, params, prompt, max_new_tokens=8, rng=jax.random.key(3),
                  temperature=2.0)
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scan_equals_unrolled(remat):
    cfg, scanned, params = make(remat_policy=remat)
    unrolled = GPT(cfg.replace(scan_layers=False))
    converted = dict(params, decoder=unscan_params(params["decoder"], cfg.num_layers))
    x = tokens((2, 16))
    np.testing.assert_allclose(
        scanned.apply({"params": params}, x),
        unrolled.apply({"params": converted}, x),
        atol=1e-5,
    )


def test_remat_gives_same_gradients():
    cfg, model, params = make()
    x = tokens((2, 16))

    def loss(m):
        return lambda p: jnp.mean(m.apply({"params": p}, x) ** 2)

    g0 = jax.grad(loss(model))(params)
    g1 = jax.grad(loss(GPT(cfg.replace(remat_policy="dots_with_no_batch_dims"))))(params)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=False):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_dropout_is_active_in_training_only():
    cfg, model, params = make(dropout_rate=0.5, attention_dropout_rate=0.5)
    x = tokens((2, 16))
    a = model.apply({"params": params}, x, rngs={"dropout": jax.random.key(1)})
    b = model.apply({"params": params}, x, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)
    det = GPT(cfg.replace(deterministic=True))
    np.testing.assert_array_equal(det.apply({"params": params}, x),
                                  det.apply({"params": params}, x))


def _while_body(hlo: str) -> str:
    """The text of the (single) while loop body computation in optimized HLO."""
    assert len(re.findall(r" while\(", hlo)) == 1
    body = re.search(r" while\(.*?body=%([\w.\-]+)", hlo).group(1)
    start = hlo.index(f"%{body} ")
    return hlo[start:hlo.index("\n}", start)]


@pytest.mark.parametrize("batch", [1, 4])
def test_compiled_decode_loop_neither_copies_nor_transposes_the_kv_cache(batch):
    # The cache layout (keys [B, K, S, H], values [B, K, H, S]), attending to the cache
    # before this step's write, and CPU_LOOP_OPTIONS together let XLA update each cache in
    # place and read it as it lies; losing any of them shows up here as per-step cache copies.
    # Unrolled layers (the CPU default), so the token loop is the program's only while loop.
    cfg, _, params = make(scan_layers=False)
    model = GPT(cfg.replace(decode=True, deterministic=True))
    prompt = tokens((batch, 4))
    compiled = jax.jit(
        decode._generate.__wrapped__,
        static_argnames=("model", "max_new_tokens", "temperature", "top_k", "top_p", "eos_id"),
        compiler_options=decoding_loop.CPU_LOOP_OPTIONS,
    ).lower(params, prompt, jax.random.key(0), model=model, max_new_tokens=8, temperature=0.0,
            top_k=0, top_p=1.0, eos_id=None).compile()
    body = _while_body(compiled.as_text())
    h = cfg.d_model // cfg.num_heads
    cache_elements = batch * cfg.kv_heads * 12 * h  # one layer's keys or values
    moved = [line for line in body.splitlines()
             if re.search(r" (copy|transpose)\(", line)
             and int(np.prod([int(d) for d in re.search(r"\[([\d,]*)\]", line).group(1)
                              .split(",") if d])) == cache_elements]
    assert not moved, "\n".join(moved)
