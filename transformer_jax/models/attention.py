"""Attention: masks, the scaled dot-product core, and multi-head attention with a KV cache.

Shape legend: B batch, T query length, S key/value length, D d_model, N query heads,
K key/value heads (K divides N; K < N is grouped-query attention), G = N // K, H head dim.
Masks are boolean, True = may attend, shaped [B or 1, 1, T, S]; an optional additive logits
bias (T5's relative positions) is shaped [B or 1, N, T, S].
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from transformer_jax.models import layers, position
from transformer_jax.models.config import ModelConfig


def causal_mask(length: int) -> jax.Array:
    """[1, 1, T, T]: position t attends to positions <= t."""
    return jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]


def segment_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
    """[B, 1, T, S]: same packed segment, and the key is not padding (segment id 0)."""
    same = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
    return (same & (kv_segment_ids[:, None, :] != 0))[:, None]


def padding_mask(q_valid: jax.Array, kv_valid: jax.Array) -> jax.Array:
    """[B, 1, T, S] from [B, T] / [B, S] booleans (True = real token)."""
    return (q_valid[:, :, None] & kv_valid[:, None, :])[:, None]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
    """Logical AND of the non-None masks (broadcasting); None when all are None."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m
    return out


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None,
    *,
    bias: jax.Array | None = None,
    scaled: bool = True,
    implementation: str = "xla",
    dropout_rate: float = 0.0,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """softmax(q k^T / sqrt(H) + bias + mask) v.

    Args:
      q: [B, T, N, H] queries.
      k: [B, S, K, H] keys.
      v: [B, S, K, H] values.
      mask: [B|1, 1, T, S] boolean or None.
      bias: [B|1, N, T, S] added to the logits, or None.
      scaled: divide q k^T by sqrt(H) (False: T5's unscaled logits).
      implementation: "xla" or "cudnn", for `jax.nn.dot_product_attention`.
      dropout_rate: attention-probability dropout; needs `dropout_rng`. Fused kernels have no
        dropout, so with dropout an explicit einsum path (same math) is used.
      dropout_rng: PRNG key for the dropout.

    Returns:
      [B, T, N, H].
    """
    if dropout_rate == 0.0:
        return jax.nn.dot_product_attention(
            q, k, v, bias=bias, mask=mask, scale=None if scaled else 1.0,
            implementation=implementation,
        )
    return einsum_attention(q, k, v, mask, bias=bias, scaled=scaled, dropout_rate=dropout_rate,
                            dropout_rng=dropout_rng)


def einsum_attention(
    q: jax.Array,
    k: jax.Array | tuple[jax.Array, ...],
    v: jax.Array | tuple[jax.Array, ...],
    mask: jax.Array | None,
    *,
    bias: jax.Array | None = None,
    scaled: bool = True,
    heads_major: bool = False,
    dropout_rate: float = 0.0,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """softmax(q k^T / sqrt(H) + bias + mask) v written as einsums (same math as above).

    Args:
      q: [B, T, N, H] queries.
      k: [B, S, K, H] keys, or [B, K, S, H] when `heads_major`; or a tuple of such blocks
        along S, attended as if concatenated (without copying them into one array).
      v: [B, S, K, H] values, or [B, K, H, S] when `heads_major`; blocks as in `k`.
      mask: [B|1, 1, T, S] boolean or None (S: all blocks together).
      bias: [B|1, N, T, S] added to the logits (S: all blocks together), or None.
      scaled: divide q k^T by sqrt(H).
      heads_major: the layout of the decoding caches: with the heads ahead of the length and
        the values transposed, both products are plain matrix-vector products over the cache
        as it lies in memory (no per-step transpose of the cache on CPU).
      dropout_rate: attention-probability dropout; needs `dropout_rng`.
      dropout_rng: PRNG key for the dropout.

    Returns:
      [B, T, N, H].
    """
    ks = k if isinstance(k, tuple) else (k,)
    vs = v if isinstance(v, tuple) else (v,)
    b, t, n, h = q.shape
    kv_heads = ks[0].shape[1] if heads_major else ks[0].shape[2]
    k_spec, v_spec = ("BKSH", "BKHS") if heads_major else ("BSKH", "BSKH")
    qg = q.reshape(b, t, kv_heads, n // kv_heads, h)  # [B, T, K, G, H]
    logits = jnp.concatenate(
        [jnp.einsum(f"BTKGH,{k_spec}->BKGTS", qg, kb, preferred_element_type=jnp.float32)
         for kb in ks], axis=-1,
    )  # [B, K, G, T, S]
    if scaled:
        logits = logits / jnp.sqrt(h).astype(jnp.float32)
    if bias is not None:
        bias = bias.reshape(bias.shape[0], kv_heads, n // kv_heads, *bias.shape[2:])
        logits = logits + bias.astype(jnp.float32)  # [B, K, G, T, S]
    if mask is not None:
        logits = jnp.where(mask[:, :, None], logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1)
    if dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    probs = probs.astype(vs[0].dtype)
    ends = np.cumsum([kb.shape[k_spec.index("S")] for kb in ks])[:-1]
    out = sum(jnp.einsum(f"BKGTS,{v_spec}->BTKGH", pb, vb)
              for pb, vb in zip(jnp.split(probs, ends, axis=-1), vs, strict=True))
    return out.reshape(b, t, n, h)


def attention_probs(q: jax.Array, k: jax.Array, mask: jax.Array | None) -> jax.Array:
    """softmax(q k^T / sqrt(H) + mask), the probabilities `dot_product_attention` applies.

    Args:
      q: [B, T, N, H] queries.
      k: [B, S, K, H] keys.
      mask: [B|1, 1, T, S] boolean or None; masked entries get probability 0.

    Returns:
      [B, N, T, S] float32; each row sums to 1 over S (a fully masked row is all 0).
    """
    b, t, n, h = q.shape
    kv_heads = k.shape[2]
    qg = q.reshape(b, t, kv_heads, n // kv_heads, h)  # [B, T, K, G, H]
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", qg, k, preferred_element_type=jnp.float32)
    logits = (logits / jnp.sqrt(h).astype(jnp.float32)).reshape(b, n, t, -1)  # [B, N, T, S]
    if mask is None:
        return jax.nn.softmax(logits, axis=-1)
    probs = jax.nn.softmax(jnp.where(mask, logits, jnp.finfo(jnp.float32).min), axis=-1)
    return jnp.where(mask, probs, 0.0)


class MultiHeadAttention(nn.Module):
    """Multi-head (grouped-query) attention, self or cross, with an optional KV cache.

    Attributes:
      config: the model config.
      cross: attend to `context` (encoder output) instead of `x`.
    """

    config: ModelConfig
    cross: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None,
        positions: jax.Array | None = None,
        context: jax.Array | None = None,
        bias: jax.Array | None = None,
    ) -> jax.Array:
        """Attends from x to itself (or to `context` when `cross`).

        Args:
          x: [B, T, D] queries' input.
          mask: [B|1, 1, T, S] boolean. For cached self-attention the causal mask comes from
            the cache index, and `mask` is None or a [B, 1, 1, S_cache] key mask over the
            cache's positions (False: a padding position, e.g. of a left-padded prompt).
          positions: [B, T] positions of x (RoPE; required when decoding with RoPE).
          context: [B, S, D] encoder output for cross-attention. When decoding, the cross
            keys/values are computed from it once and cached; pass None on later steps to
            reuse the cache.
          bias: [B|1, N, T, S] logits bias of self-attention, or None. When decoding, its
            keys are the cache positions 0 .. max_len - 1 (the cache's write index is the
            position of the chunk's first token).

        Returns:
          [B, T, D].
        """
        cfg = self.config
        n, k_heads, h = cfg.num_heads, cfg.kv_heads, cfg.dim_per_head
        kv_input = context if self.cross else x
        q = layers.dense(cfg, (n, h), ("embed", "heads", "kv"), name="query")(x)
        if self.cross and cfg.decode and context is None:
            k = v = None  # read from the cache below
        else:
            k = layers.dense(cfg, (k_heads, h), ("embed", "kv_heads", "kv"), name="key")(kv_input)
            v = layers.dense(cfg, (k_heads, h), ("embed", "kv_heads", "kv"), name="value")(
                kv_input
            )
        if cfg.position == "rope" and not self.cross:
            q = position.apply_rope(q, positions, cfg.rope_theta)
            k = position.apply_rope(k, positions, cfg.rope_theta)
        q = layers.constrain(q, ("activation_batch", "activation_length", "activation_heads", None))
        if k is not None:
            k = layers.constrain(k, ("activation_batch", None, "activation_kv_heads", None))
            v = layers.constrain(v, ("activation_batch", None, "activation_kv_heads", None))

        if cfg.decode:
            # Decoding caches are heads-major (keys [B, K, S, H], values [B, K, H, S]):
            # see `einsum_attention`.
            if self.cross:
                k, v = self._cross_cache(k, v)
            else:
                k, v, mask, bias = self._update_cache(k, v, bias, mask)
            out = einsum_attention(
                q, k, v, mask, bias=bias, scaled=cfg.scaled_attention, heads_major=True
            )  # [B, T, N, H]
        else:
            if self.is_mutable_collection("intermediates"):
                # Asked for (apply(..., mutable=["intermediates"])): the fused kernel does not
                # return its probabilities, so they are computed explicitly for this call only.
                self.sow("intermediates", "attention_probs", attention_probs(q, k, mask))
            dropout_rate = 0.0 if cfg.deterministic else cfg.attention_dropout_rate
            out = dot_product_attention(
                q, k, v, mask,
                bias=bias,
                scaled=cfg.scaled_attention,
                implementation=cfg.attention_impl,
                dropout_rate=dropout_rate,
                dropout_rng=self.make_rng("dropout") if dropout_rate > 0 else None,
            )  # [B, T, N, H]
        out = layers.constrain(
            out, ("activation_batch", "activation_length", "activation_heads", None)
        )
        return layers.dense(cfg, cfg.d_model, ("heads", "kv", "embed"), axis=(-2, -1), name="out")(
            out
        )

    def _cross_cache(
        self, k: jax.Array | None, v: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """Stores the encoder's keys/values (when given) or returns the stored ones.

        Cross-attention keys/values depend only on the source, so a decoder computes them on
        its first step and reads them on every later one.

        Args:
          k, v: [B, S, K, H], or None to read the cache.

        Returns:
          keys [B, K, S, H] and values [B, K, H, S] (heads-major).
        """
        if k is None and not self.has_variable("cache", "cached_key"):
            raise ValueError("cross-attention cache is empty: pass the encoder output first")
        if k is not None:
            k, v = heads_major(k), heads_major(v, values=True)
        cached_k = self.variable("cache", "cached_key", lambda: k)
        cached_v = self.variable("cache", "cached_value", lambda: v)
        if k is not None:
            cached_k.value, cached_v.value = k, v
        return cached_k.value, cached_v.value

    def _update_cache(
        self,
        k: jax.Array,
        v: jax.Array,
        bias: jax.Array | None = None,
        key_mask: jax.Array | None = None,
    ) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...], jax.Array, jax.Array | None]:
        """Appends this chunk's keys/values to the cache; returns what the chunk attends to.

        The cache is created by `init` with the input's shape, so initialize a decoding model
        on a [B, max_decode_len] input. Afterwards each call appends T tokens.

        The chunk attends to the cache as it was before the write plus to itself, as two
        blocks: the write is then the cache buffer's last use and XLA updates it in place.
        (Attending to the updated cache instead made XLA copy every cache on every step.)

        Args:
          k, v: [B, T, K, H] this chunk's keys and values.
          bias: [B|1, N, T, max_len] logits bias against key positions 0 .. max_len - 1, or
            None.
          key_mask: [B, 1, 1, S_cache] boolean, False at padding positions of the cache, or
            None (all real).

        Returns:
          key blocks and value blocks for `einsum_attention(heads_major=True)`, their
          [1, 1, T, S + T] mask (the cache's earlier positions, then causal within the
          chunk) and the matching [B|1, N, T, S + T] bias (or None).
        """
        k, v = heads_major(k), heads_major(v, values=True)  # [B, K, T, H], [B, K, H, T]
        t = k.shape[2]
        initialized = self.has_variable("cache", "cached_key")
        cached_k = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        start = index.value
        chunk_bias = None if bias is None else lax.dynamic_slice_in_dim(bias, start, t, axis=-1)
        if not initialized:
            return (k,), (v,), causal_mask(t), chunk_bias
        old_k, old_v = cached_k.value, cached_v.value
        cached_k.value = lax.dynamic_update_slice(old_k, k, (0, 0, start, 0))
        cached_v.value = lax.dynamic_update_slice(old_v, v, (0, 0, 0, start))
        index.value = start + t
        earlier = jnp.arange(old_k.shape[2]) < start  # [S]
        mask = jnp.concatenate(
            [jnp.broadcast_to(earlier, (1, 1, t, earlier.shape[0])), causal_mask(t)], axis=-1
        )
        if key_mask is not None:
            chunk_valid = lax.dynamic_slice_in_dim(key_mask, start, t, axis=-1)
            mask = mask & jnp.concatenate([key_mask, chunk_valid], axis=-1)
        if bias is not None:
            if old_k.shape[2] > bias.shape[-1]:
                raise ValueError(f"a cache of {old_k.shape[2]} positions exceeds model.max_len="
                                 f"{bias.shape[-1]} (the relative bias's key positions)")
            bias = jnp.concatenate([bias[..., : old_k.shape[2]], chunk_bias], axis=-1)
        return (old_k, k), (old_v, v), mask, bias


def heads_major(x: jax.Array, values: bool = False) -> jax.Array:
    """[B, S, K, H] -> the decoding caches' layout: [B, K, S, H], or [B, K, H, S] for values."""
    x = jnp.transpose(x, (0, 2, 3, 1) if values else (0, 2, 1, 3))
    return layers.constrain(x, ("activation_batch", "activation_kv_heads", None, None))
