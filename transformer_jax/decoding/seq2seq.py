"""Encoder-decoder decoding with both caches: greedy and sampling (beam search: beam_search.py).

The source is encoded once; the first decoder step stores the cross-attention keys/values
and every later step reads them, while the self-attention KV cache grows by one token per
step. The token loop is `loop.token_loop`, inside one jitted function.
Shapes: B batch, S source length, M max output tokens, V vocab.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.decoding.loop import loop_jit, token_loop
from transformer_jax.decoding.sampling import check_sampling
from transformer_jax.errors import UserError
from transformer_jax.models.encdec import EncoderDecoder


def check_decoder(model: nn.Module) -> None:
    """Raises unless `model` is an EncoderDecoder with `decode=True, deterministic=True`."""
    cfg = getattr(model, "config", None)
    if not isinstance(model, EncoderDecoder) or not (cfg.decode and cfg.deterministic):
        raise ValueError(
            "needs EncoderDecoder(config.replace(decode=True, deterministic=True))"
        )


def length_limits(
    source: jax.Array, max_len: int, len_a: float, len_b: int, pad_id: int = 0
) -> jax.Array:
    """[B] int32 output-token limits (EOS included): min(max_len, a * source length + b), >= 1.

    The source length counts its tokens other than `pad_id`.
    """
    src_len = jnp.sum(source != pad_id, axis=-1).astype(jnp.float32)
    return jnp.clip(jnp.floor(len_a * src_len + len_b), 1, max_len).astype(jnp.int32)


def empty_cache(model: EncoderDecoder, source: jax.Array, target_len: int) -> Any:
    """Zero self- and cross-attention caches for `source` [B, S] and `target_len` tokens."""
    b = source.shape[0]
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), source, jnp.zeros((b, target_len), jnp.int32))[
            "cache"
        ]
    )
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def decode_step(
    model: EncoderDecoder,
    params: Any,
    cache: Any,
    encoded: jax.Array | None,
    source: jax.Array,
    tokens: jax.Array,
    position: jax.Array | int,
) -> tuple[jax.Array, Any]:
    """One cached decoder step.

    Args:
      model: the decoding model.
      params: its parameters.
      cache: the caches from `empty_cache` or the previous step.
      encoded: [B, S, D] on the first step (fills the cross cache), None afterwards.
      source: [B, S] source ids (for the padding mask).
      tokens: [B] the previous output token (bos on the first step).
      position: the position of `tokens` in the target.

    Returns:
      ([B, V] float32 next-token logits, the updated cache).
    """
    positions = jnp.full((tokens.shape[0], 1), position, jnp.int32)
    logits, updated = model.apply(
        {"params": params, "cache": cache}, encoded, source, tokens[:, None], positions,
        method=EncoderDecoder.decode, mutable=["cache"],
    )
    return logits[:, 0], updated["cache"]


def force_eos(logits: jax.Array, step: jax.Array, limits: jax.Array, eos_id: int) -> jax.Array:
    """Leaves only EOS possible in rows whose output reaches its limit at this step.

    Args:
      logits: [B, ..., V] scores.
      step: the output index being chosen (0-based).
      limits: [B] output-token limits (EOS included).
      eos_id: the EOS id.
    """
    last = (step >= limits - 1).reshape((-1,) + (1,) * (logits.ndim - 1))
    only_eos = jnp.full_like(logits, jnp.finfo(logits.dtype).min).at[..., eos_id].set(0.0)
    return jnp.where(last, only_eos, logits)


@functools.partial(
    loop_jit,
    static_argnames=("model", "max_decode_len", "temperature", "top_k", "top_p", "bos_id",
                     "eos_id", "len_a", "len_b"),
)
def _sample(params, source, rng, *, model, max_decode_len, temperature, top_k, top_p, bos_id,
            eos_id, len_a, len_b):
    b = source.shape[0]
    limits = length_limits(source, max_decode_len, len_a, len_b, model.config.pad_id)
    encoded = model.apply({"params": params}, source, method=EncoderDecoder.encode)
    cache = empty_cache(model, source, max_decode_len + 1)
    logits, cache = decode_step(
        model, params, cache, encoded, source, jnp.full((b,), bos_id, jnp.int32), 0
    )
    return token_loop(
        lambda cache, token, i: decode_step(model, params, cache, None, source, token, i + 1),
        logits, cache, rng, max_new_tokens=max_decode_len, temperature=temperature,
        top_k=top_k, top_p=top_p, eos_id=eos_id,
        adjust=lambda logits, i: force_eos(logits, i, limits, eos_id),
    )


def sample(
    model: EncoderDecoder,
    params: Any,
    source: jax.Array,
    *,
    max_decode_len: int,
    bos_id: int,
    eos_id: int,
    rng: jax.Array | None = None,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    len_a: float = 0.0,
    len_b: int | None = None,
) -> jax.Array:
    """Greedy (temperature 0) or sampled outputs for a batch of sources.

    Args:
      model: `EncoderDecoder` with `decode=True, deterministic=True`.
      params: its parameters.
      source: [B, S] int source ids, padded with `model.config.pad_id`.
      max_decode_len: M, the static output length.
      bos_id, eos_id: the decoder start id (e.g. `config.decoder_start_id`: the pad id in
        T5 and Marian) and the end id; a row stops after its EOS.
      rng: PRNG key (unused when greedy).
      temperature, top_k, top_p: see `sampling.sample_logits`.
      len_a, len_b: a row emits at most a * (its source length) + b tokens, EOS included
        (default: M), then EOS is forced.

    Returns:
      [B, M] int32 outputs; positions after EOS are 0.
    """
    check_decoder(model)
    if source.ndim != 2 or source.shape[1] == 0:
        raise UserError(f"the source must be a non-empty [batch, length] array, got {source.shape}")
    check_sampling(temperature, top_k, top_p)
    return _sample(
        params, jnp.asarray(source, jnp.int32), jax.random.key(0) if rng is None else rng,
        model=model, max_decode_len=int(max_decode_len), temperature=float(temperature),
        top_k=int(top_k), top_p=float(top_p), bos_id=int(bos_id), eos_id=int(eos_id),
        len_a=float(len_a), len_b=int(max_decode_len if len_b is None else len_b),
    )
