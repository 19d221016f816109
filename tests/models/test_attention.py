"""Attention core and position encodings."""

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.models import attention, position


def test_masks():
    seg = jnp.array([[1, 1, 2, 0]])
    m = attention.segment_mask(seg, seg)[0, 0]
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(m, expected)
    np.testing.assert_array_equal(attention.causal_mask(3)[0, 0], np.tril(np.ones((3, 3), bool)))
    both = attention.combine_masks(attention.causal_mask(4), None, attention.segment_mask(seg, seg))
    assert both.shape == (1, 1, 4, 4) and not bool(both[0, 0, 0, 1])


def test_explicit_dropout_path_matches_fused_without_dropout():
    """The einsum path (used for attention dropout) computes the same GQA attention."""
    keys = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(keys[0], (2, 5, 4, 8))
    k = jax.random.normal(keys[1], (2, 7, 2, 8))
    v = jax.random.normal(keys[2], (2, 7, 2, 8))
    mask = jnp.tril(jnp.ones((5, 7), bool), k=2)[None, None]
    fused = attention.dot_product_attention(q, k, v, mask)
    # A vanishing dropout rate keeps every probability: the explicit path, same math.
    explicit = attention.dot_product_attention(
        q, k, v, mask, dropout_rate=1e-12, dropout_rng=jax.random.key(1)
    )
    np.testing.assert_allclose(fused, explicit, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    q = jax.random.normal(jax.random.key(0), (1, 1, 1, 16))
    k = jax.random.normal(jax.random.key(1), (1, 1, 1, 16))

    def score(pq, pk):
        rq = position.apply_rope(q, jnp.array([[pq]]))
        rk = position.apply_rope(k, jnp.array([[pk]]))
        return float(jnp.sum(rq * rk))

    np.testing.assert_allclose(score(3, 1), score(10, 8), rtol=1e-5)
    assert abs(score(3, 1) - score(3, 2)) > 1e-4


def test_sinusoidal_matches_paper_formula():
    d = 8
    enc = position.sinusoidal(jnp.array([[5]]), d)[0, 0]
    i = np.arange(d // 2)
    rates = 1.0 / (10_000 ** (i / (d // 2 - 1)))
    np.testing.assert_allclose(enc[: d // 2], np.sin(5 * rates), rtol=1e-5)
    np.testing.assert_allclose(enc[d // 2:], np.cos(5 * rates), rtol=1e-5)
