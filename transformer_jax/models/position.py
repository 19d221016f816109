"""Position encodings as pure functions: sinusoidal tables and rotary embeddings (RoPE).

Learned positions are an ordinary embedding table (`layers.embed`) looked up with the same
`positions` array; all three take explicit positions so packed sequences (positions restart
per document) and incremental decoding (positions continue from the cache index) just work.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sinusoidal(
    positions: jax.Array,
    d_model: int,
    max_timescale: float = 10_000.0,
    timescales: str = "t2t",
) -> jax.Array:
    """The fixed encoding of "Attention Is All You Need", section 3.5.

    Feature i < D/2 is sin(p * w_i), feature D/2 + i is cos(p * w_i) (the [sin | cos]
    halves of tensor2tensor and of Hugging Face's MarianSinusoidalPositionalEmbedding).

    Args:
      positions: [B, T] integer positions.
      d_model: D, the (even) embedding width.
      max_timescale: the longest wavelength.
      timescales: "t2t": w_i = max_timescale^(-i / (D/2 - 1)) (tensor2tensor), or
        "paper": w_i = max_timescale^(-2i / D) (the paper's formula; Marian).

    Returns:
      [B, T, D] float32.
    """
    half = d_model // 2
    i = jnp.arange(half, dtype=jnp.float32)
    if timescales == "paper":
        inv_timescales = jnp.exp(-jnp.log(max_timescale) * 2.0 * i / d_model)  # [D/2]
    else:
        inv_timescales = jnp.exp(-jnp.log(max_timescale) / max(half - 1, 1) * i)  # [D/2]
    angles = positions[..., None].astype(jnp.float32) * inv_timescales  # [B, T, D/2]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def apply_rope(x: jax.Array, positions: jax.Array, theta: float = 10_000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021), "rotate half" layout as in Llama/GPT-NeoX.

    Args:
      x: [B, T, N, H] queries or keys (H even).
      positions: [B, T] integer positions.
      theta: the base frequency.

    Returns:
      [B, T, N, H], x rotated by position-dependent angles, in x's dtype.
    """
    half = x.shape[-1] // 2
    freqs = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)  # [H/2]
    angles = positions[..., None].astype(jnp.float32) * freqs  # [B, T, H/2]
    sin = jnp.sin(angles)[:, :, None, :]  # [B, T, 1, H/2]
    cos = jnp.cos(angles)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)
