"""Batched beam search for the encoder-decoder, jitted, on the decoder's caches.

Each step extends every live beam by every token, keeps the best 2K candidates (so K live
ones remain even if K of them end in EOS), moves candidates ending in EOS to the finished
set scored with the GNMT length penalty ((5 + length) / 6) ** alpha, and reorders the
self-attention cache by the surviving beams' parents. Cross-attention keys/values are the
same for all beams of a source, so they are never reordered. The search stops when no live
beam can still beat the worst finished one (early stop on EOS) or at the length limit.
Shapes: B batch, K beam size, S source length, M max output tokens, V vocab.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from transformer_jax.decoding import repetition
from transformer_jax.decoding import seq2seq as seq2seq_decode
from transformer_jax.decoding.loop import loop_jit
from transformer_jax.errors import UserError
from transformer_jax.models.encdec import EncoderDecoder

NEG = -1.0e7  # a finite "minus infinity" so arithmetic on dead beams stays finite


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT (Wu et al. 2016) length penalty ((5 + length) / 6) ** alpha."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _tile(x: jax.Array, beams: int) -> jax.Array:
    """[B, ...] -> [B * K, ...], each row repeated K times consecutively."""
    return jnp.repeat(x, beams, axis=0)


def _gather_beams(x: jax.Array, indices: jax.Array) -> jax.Array:
    """x [B, K', ...] gathered along the beam axis by indices [B, K] -> [B, K, ...]."""
    return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


def reorder_cache(cache: Any, parents: jax.Array) -> Any:
    """Reorders the self-attention KV caches of B * K rows by parent beam indices [B, K].

    The batch is the leading axis of every self-attention cache array (heads-major keys
    [B * K, Kh, T, H] and values [B * K, Kh, H, T]), after the layer axis [L, ...] when layers
    are scanned: axis `ndim - 4`. The cache index and the cross-attention cache are left
    alone.
    """
    b, k = parents.shape
    flat = (parents + k * jnp.arange(b)[:, None]).reshape(-1)  # [B * K] rows to take

    def reorder(path, leaf):
        names = [getattr(p, "key", "") for p in path]
        if "cross_attention" in names or names[-1] == "cache_index":
            return leaf
        return jnp.take(leaf, flat, axis=leaf.ndim - 4)

    return jax.tree_util.tree_map_with_path(reorder, cache)


@functools.partial(
    loop_jit,
    static_argnames=("model", "beam_size", "alpha", "max_decode_len", "bos_id", "eos_id",
                     "len_a", "len_b", "repetition_penalty", "no_repeat_ngram"),
)
def _beam_search(params, source, *, model, beam_size, alpha, max_decode_len, bos_id, eos_id,
                 len_a, len_b, repetition_penalty=1.0, no_repeat_ngram=0):
    b, k, m = source.shape[0], beam_size, max_decode_len
    limits = seq2seq_decode.length_limits(source, m, len_a, len_b, model.config.pad_id)  # [B]
    flat_source = _tile(source, k)  # [B * K, S]
    encoded = model.apply({"params": params}, flat_source, method=EncoderDecoder.encode)
    cache = seq2seq_decode.empty_cache(model, flat_source, m + 1)
    logits, cache = seq2seq_decode.decode_step(
        model, params, cache, encoded, flat_source, jnp.full((b * k,), bos_id, jnp.int32), 0
    )
    best_possible_lp = length_penalty(limits, alpha)  # [B]

    def cond(state):
        i, _, _, alive_logp, _, fin_score, _ = state
        # A live beam's log-prob only falls, and its penalty grows at most to the limit's.
        best_alive = alive_logp[:, 0] / best_possible_lp  # [B]
        worst_finished = jnp.min(fin_score, axis=1)  # [B]
        searching = (i < limits) & (best_alive > worst_finished)  # [B]
        return (i < m) & jnp.any(searching)

    def body(state):
        i, cache, logits, alive_logp, alive_seq, fin_score, fin_seq = state
        v = logits.shape[-1]
        logp = jax.nn.log_softmax(logits).reshape(b, k, v)
        if repetition_penalty != 1.0 or no_repeat_ngram:
            logp = repetition.penalize_repeats(
                logp, alive_seq, i, repetition_penalty=repetition_penalty,
                no_repeat_ngram=no_repeat_ngram, neg=NEG)
        logp = seq2seq_decode.force_eos(logp, i, limits, eos_id)
        candidates = (alive_logp[:, :, None] + logp).reshape(b, k * v)
        top_logp, top_index = jax.lax.top_k(candidates, 2 * k)  # [B, 2K]
        parents, tokens = top_index // v, top_index % v
        seqs = _gather_beams(alive_seq, parents).at[:, :, i].set(tokens)  # [B, 2K, M]
        ended = tokens == eos_id
        # Live: the best K candidates not ending in EOS.
        alive_logp_new, alive_pick = jax.lax.top_k(jnp.where(ended, NEG, top_logp), k)
        alive_seq = _gather_beams(seqs, alive_pick)
        # Finished: merge candidates ending in EOS into the best K so far.
        real = ended & (top_logp > NEG / 2)  # not the continuation of a dead beam
        score = jnp.where(real, top_logp / length_penalty(i + 1, alpha), NEG)
        fin_score, fin_pick = jax.lax.top_k(jnp.concatenate([fin_score, score], axis=1), k)
        fin_seq = _gather_beams(jnp.concatenate([fin_seq, seqs], axis=1), fin_pick)
        cache = reorder_cache(cache, _gather_beams(parents, alive_pick))
        next_tokens = alive_seq[:, :, i].reshape(b * k)
        logits, cache = seq2seq_decode.decode_step(
            model, params, cache, None, flat_source, next_tokens, i + 1
        )
        return i + 1, cache, logits, alive_logp_new, alive_seq, fin_score, fin_seq

    alive_logp = jnp.tile(jnp.array([0.0] + [NEG] * (k - 1), jnp.float32), (b, 1))
    init = (jnp.zeros((), jnp.int32), cache, logits, alive_logp,
            jnp.zeros((b, k, m), jnp.int32), jnp.full((b, k), NEG, jnp.float32),
            jnp.zeros((b, k, m), jnp.int32))
    _, _, _, alive_logp, alive_seq, fin_score, fin_seq = jax.lax.while_loop(cond, body, init)
    # Rows that finished nothing (cannot happen with the forced EOS, kept for safety of
    # shapes) fall back to their best live beam.
    any_finished = fin_score[:, 0] > NEG / 2
    best = jnp.where(any_finished[:, None], fin_seq[:, 0], alive_seq[:, 0])
    scores = jnp.where(any_finished, fin_score[:, 0], alive_logp[:, 0])
    ended = jnp.cumsum(best == eos_id, axis=1) - (best == eos_id)  # tokens after the EOS
    return jnp.where(ended > 0, 0, best), scores


def beam_search(
    model: EncoderDecoder,
    params: Any,
    source: jax.Array,
    *,
    beam_size: int,
    max_decode_len: int,
    bos_id: int,
    eos_id: int,
    alpha: float = 0.6,
    len_a: float = 0.0,
    len_b: int | None = None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """The best beam for each source.

    Args:
      model: `EncoderDecoder` with `decode=True, deterministic=True`.
      params: its parameters.
      source: [B, S] int source ids, padded with `model.config.pad_id`.
      beam_size: K (1 is greedy when alpha is 0).
      max_decode_len: M, the static output length.
      bos_id, eos_id: the decoder start id and the end id.
      alpha: GNMT length-penalty exponent (0 = plain log-probability).
      len_a, len_b: a row emits at most a * (its source length) + b tokens, EOS included
        (default: M); EOS is forced there.
      repetition_penalty, no_repeat_ngram: see `decoding/repetition.py` (1 and 0 = off).

    Returns:
      ([B, M] int32 outputs, 0 after EOS; [B] float32 length-normalized log-probabilities).
    """
    seq2seq_decode.check_decoder(model)
    if beam_size < 1:
        raise UserError(f"beam_size={beam_size} must be >= 1")
    if source.ndim != 2 or source.shape[1] == 0:
        raise UserError(f"the source must be a non-empty [batch, length] array, got {source.shape}")
    return _beam_search(
        params, jnp.asarray(source, jnp.int32), model=model, beam_size=int(beam_size),
        alpha=float(alpha), max_decode_len=int(max_decode_len), bos_id=int(bos_id),
        eos_id=int(eos_id), len_a=float(len_a),
        len_b=int(max_decode_len if len_b is None else len_b),
        **_repetition_options(repetition_penalty, no_repeat_ngram),
    )


def _repetition_options(repetition_penalty: float, no_repeat_ngram: int) -> dict[str, Any]:
    """The checked repetition controls as `_beam_search` arguments (none when off, so the
    default search compiles and runs exactly as without them)."""
    repetition.check_repetition(repetition_penalty, no_repeat_ngram)
    off = repetition_penalty == 1.0 and no_repeat_ngram == 0
    return {} if off else {"repetition_penalty": float(repetition_penalty),
                           "no_repeat_ngram": int(no_repeat_ngram)}
