"""The one token loop every sampler runs, and how decoding loops are compiled.

`token_loop` is a `lax.while_loop` on device (no per-token Python round-trip): each step
adjusts the logits (e.g. forces EOS at a length limit), picks a token with
`sampling.sample_logits`, writes it, and runs the model's cached step on it. The LM sampler
(`decoding/lm.py`) and the seq2seq sampler (`decoding/seq2seq.py`) differ only in their
model step and logit adjustment; beam search (`decoding/beam_search.py`) keeps K beams per
row and has its own loop. Shapes: B batch, M max new tokens, V vocab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from transformer_jax.decoding.sampling import sample_logits

# XLA CPU's default copy insertion copies every KV cache on every step of a decoding
# `while_loop` (the step reads the cache and updates it in place); its region analysis
# proves the reads come first and drops those copies (reference model, batch 8, in one
# process: 8.1 -> 6.2 ms per step; tests/models/test_gpt.py checks the compiled loop).
CPU_LOOP_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}


def loop_jit(fun: Callable, *, static_argnames: tuple[str, ...]) -> Callable:
    """`jax.jit` for a decoding loop, compiled with `CPU_LOOP_OPTIONS` on the CPU backend."""
    plain = jax.jit(fun, static_argnames=static_argnames)
    cpu = jax.jit(fun, static_argnames=static_argnames, compiler_options=CPU_LOOP_OPTIONS)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        return (cpu if jax.default_backend() == "cpu" else plain)(*args, **kwargs)

    return call


# (cache, tokens [B], index of the token being written) -> (next logits [B, V], cache)
StepFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
# (logits [B, V], index of the token being chosen) -> logits [B, V]
AdjustFn = Callable[[jax.Array, jax.Array], jax.Array]


def token_loop(
    step: StepFn,
    logits: jax.Array,
    cache: Any,
    rng: jax.Array,
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    eos_id: int | None,
    adjust: AdjustFn | None = None,
) -> jax.Array:
    """Samples up to M tokens per row, each fed back through `step` (call inside jit).

    Args:
      step: the model's cached step on the tokens just chosen.
      logits: [B, V] next-token logits after the prompt (or the start token).
      cache: the model's caches after producing `logits`.
      rng: PRNG key, split once per step.
      max_new_tokens: M.
      temperature, top_k, top_p: see `sampling.sample_logits` (temperature 0 = greedy).
      eos_id: a row stops after emitting it (None: never).
      adjust: changes the logits before each choice (None: as they are).

    Returns:
      [B, M] int32 tokens; positions after a row's EOS are 0.
    """
    b = logits.shape[0]

    def cond(carry):
        i, _, _, _, done, _ = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, cache, logits, out, done, rng = carry
        rng, step_rng = jax.random.split(rng)
        if adjust is not None:
            logits = adjust(logits, i)
        token = sample_logits(logits, step_rng, temperature=temperature, top_k=top_k,
                              top_p=top_p)
        token = jnp.where(done, 0, token)
        out = out.at[:, i].set(token)
        if eos_id is not None:
            done = done | (token == eos_id)
        logits, cache = step(cache, token, i)
        return i + 1, cache, logits, out, done, rng

    out = jnp.zeros((b, max_new_tokens), jnp.int32)
    init = (jnp.zeros((), jnp.int32), cache, logits, out, jnp.zeros((b,), jnp.bool_), rng)
    return jax.lax.while_loop(cond, body, init)[3]
