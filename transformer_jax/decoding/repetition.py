"""Repetition controls for beam search: a repetition penalty and no-repeat n-grams.

Both act on a step's log-probabilities given the tokens each beam has emitted so far, as
Hugging Face's `repetition_penalty` and `no_repeat_ngram_size` do on beam scores:
- penalty p >= 1 (Keskar et al. 2019, CTRL): an already emitted token's log-probability is
  multiplied by p (log-probabilities are <= 0, so it becomes less likely); 1 = off.
- no-repeat n-gram n >= 1: a token that would complete an n-gram the beam already contains
  is banned (n = 1: no token twice); 0 = off.
Shapes: B batch, K beams, M max output tokens, V vocab.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from transformer_jax.errors import UserError


def check_repetition(repetition_penalty: float, no_repeat_ngram: int) -> None:
    """UserError when the penalty is below 1 or the n-gram size is negative."""
    if not repetition_penalty >= 1.0:
        raise UserError(f"--repetition_penalty={repetition_penalty} must be >= 1 "
                        "(1 = off; 1.2 is a common choice)")
    if no_repeat_ngram < 0:
        raise UserError(f"--no_repeat_ngram={no_repeat_ngram} must be >= 0 "
                        "(0 = off; 3 forbids repeating any 3-gram)")


def _emitted(seqs: jax.Array, tokens: jax.Array, keep: jax.Array, vocab: int) -> jax.Array:
    """bool [B, K, V]: True at each `tokens[b, k, j]` whose `keep[b, k, j]` is True (`keep`
    broadcasts to the shape of `tokens`, [B, K, J])."""
    b, k, _ = seqs.shape
    rows = jnp.broadcast_to(jnp.arange(b * k).reshape(b, k, 1), tokens.shape)
    keep = jnp.broadcast_to(keep, tokens.shape)
    marks = jnp.zeros((b * k, vocab), bool).at[rows.reshape(-1), tokens.reshape(-1)].max(
        keep.reshape(-1))
    return marks.reshape(b, k, vocab)


def penalize_repeats(logp: jax.Array, seqs: jax.Array, step: jax.Array, *,
                     repetition_penalty: float, no_repeat_ngram: int, neg: float) -> jax.Array:
    """The step's log-probabilities with repeats penalized and repeated n-grams banned.

    Args:
      logp: [B, K, V] log-probabilities of the token at output index `step`.
      seqs: [B, K, M] each beam's tokens; positions < `step` are emitted.
      step: the output index being chosen (0-based, traced).
      repetition_penalty: p >= 1 (static; 1 = off).
      no_repeat_ngram: n >= 0 (static; 0 = off).
      neg: the log-probability a banned token gets.
    """
    m, vocab = seqs.shape[-1], logp.shape[-1]
    if repetition_penalty != 1.0:
        seen = _emitted(seqs, seqs, jnp.arange(m) < step, vocab)
        logp = jnp.where(seen, logp * repetition_penalty, logp)
    n = no_repeat_ngram
    if n and n <= m:
        starts = m - n + 1  # J: n-grams seqs[j : j + n], j < J
        completes = seqs[..., n - 1:]  # [B, K, J] the last token of each n-gram
        match = jnp.arange(starts) + n - 1 < step  # the n-gram lies in the emitted prefix
        for o in range(n - 1):  # its first n - 1 tokens equal the last n - 1 emitted
            last = jnp.take(seqs, jnp.clip(step - (n - 1) + o, 0, m - 1), axis=-1)  # [B, K]
            match = match & (seqs[..., o:o + starts] == last[..., None])
        logp = jnp.where(_emitted(seqs, completes, match, vocab), neg, logp)
    return logp
