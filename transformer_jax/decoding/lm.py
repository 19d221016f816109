"""Decoder-only (GPT) generation with a KV cache: greedy, temperature, top-k, top-p.

The whole generation (prefill + `loop.token_loop`) is one jitted function. Prompts of
different lengths are left-padded (Hugging Face style): a `prompt_mask` marks the real
tokens, positions count from each row's first real token, and the padding positions of the
KV cache are masked, so each row decodes as it would alone.
Shapes: B batch, P prompt length, M max new tokens, V vocab.
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


@functools.partial(
    loop_jit,
    static_argnames=("model", "max_new_tokens", "temperature", "top_k", "top_p", "eos_id"),
)
def _generate(params, prompt, rng, prompt_mask=None, *, model, max_new_tokens, temperature,
              top_k, top_p, eos_id):
    b, p = prompt.shape
    if prompt_mask is None:
        prompt_mask = jnp.ones((b, p), bool)
    total = p + max_new_tokens
    valid = jnp.concatenate([prompt_mask, jnp.ones((b, max_new_tokens), bool)], axis=1)
    prompt_positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=1) - 1, 0)  # [B, P]
    real = jnp.sum(prompt_mask, axis=1, dtype=jnp.int32)[:, None]  # [B, 1]
    cache_shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((b, total), jnp.int32))["cache"]
    )
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

    def run(cache, tokens, positions):
        logits, updated = model.apply(
            {"params": params, "cache": cache}, tokens, positions=positions, cache_valid=valid,
            mutable=["cache"],
        )
        return logits[:, -1], updated["cache"]

    logits, cache = run(cache, prompt, prompt_positions)  # prefill: [B, V]
    return token_loop(
        lambda cache, token, i: run(cache, token[:, None], real + i), logits, cache, rng,
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        eos_id=eos_id,
    )


def generate(
    model: nn.Module,
    params: Any,
    prompt: jax.Array,
    *,
    max_new_tokens: int,
    rng: jax.Array | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_id: int | None = None,
    prompt_mask: jax.Array | None = None,
) -> jax.Array:
    """Continues each prompt row by up to `max_new_tokens` tokens.

    Args:
      model: a decoder-only model whose config has `decode=True, deterministic=True`.
      params: its parameters.
      prompt: [B, P] int token ids; rows shorter than P are left-padded (any id).
      max_new_tokens: M.
      rng: PRNG key for sampling (unused when temperature is 0).
      temperature, top_k, top_p: see `sampling.sample_logits`.
      eos_id: stop a row after it emits this id (later positions are 0).
      prompt_mask: [B, P] booleans, True at real tokens, which must end each row (left
        padding); None: no padding.

    Returns:
      [B, M] int32 new tokens.
    """
    cfg = model.config
    if not (cfg.decode and cfg.deterministic):
        raise ValueError("generate() needs model.config.replace(decode=True, deterministic=True)")
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise UserError(f"the prompt must be a non-empty [batch, length] array, got {prompt.shape}")
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 1:
        raise UserError(f"--max_new_tokens={max_new_tokens}: ask for at least one token")
    if prompt.shape[1] + max_new_tokens > cfg.max_len:
        raise UserError(
            f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} exceeds the "
            f"model's max_len {cfg.max_len}: shorten the prompt or ask for fewer tokens"
        )
    if prompt_mask is None:
        prompt_mask = jnp.ones(prompt.shape, bool)
    elif prompt_mask.shape != prompt.shape:
        raise UserError(f"prompt_mask {prompt_mask.shape} must have the prompt's shape "
                        f"{prompt.shape}")
    rng = jax.random.key(0) if rng is None else rng
    return _generate(
        params, jnp.asarray(prompt, jnp.int32), rng, jnp.asarray(prompt_mask, bool),
        model=model, max_new_tokens=max_new_tokens,
        temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), eos_id=eos_id,
    )
