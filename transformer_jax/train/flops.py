"""Model FLOPs per token, device peak FLOP/s, and MFU.

Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B):

    6 * P_matmul + 12 * L * T * (N * H)

P_matmul counts the weights every token multiplies by: per layer the Q/K/V/O projections
(D*N*H + 2*D*K*H + N*H*D) and the MLP (2*D*F, or 3*D*F when gated), plus the output
projection V*D (counted even when tied to the input embedding; embedding lookups, norms and
biases are not matmuls). The second term is attention's QK^T and AV over a context of T
(causal masking not discounted, as in PaLM). Forward-only (decoding, eval) is a third of it.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from transformer_jax.models.config import ModelConfig

# Dense bf16 peak FLOP/s per chip, from the vendors' data sheets (no sparsity).
_PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def matmul_params(config: ModelConfig) -> int:
    """P_matmul of a decoder-only model (see module docstring)."""
    d, n, k, h, f = (
        config.d_model, config.num_heads, config.kv_heads, config.dim_per_head, config.mlp_dim
    )
    attn = d * n * h + 2 * d * k * h + n * h * d
    mlp = (3 if config.activation in ("swiglu", "geglu") else 2) * d * f
    return config.num_layers * (attn + mlp) + config.vocab_size * d


def train_flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """6 * P_matmul + 12 * L * T * N * H."""
    attention = 12 * config.num_layers * seq_len * config.num_heads * config.dim_per_head
    return 6.0 * matmul_params(config) + attention


def measure_cpu_peak(size: int = 2048, repeats: int = 5) -> float:
    """The host's f32 matmul FLOP/s: the median of `repeats` jitted [size, size] matmuls.

    The median, not the best, so one lucky or one preempted repetition on a shared machine
    does not set the figure; 2048 (17 GFLOP) is large enough for the matmul to reach full
    speed on every core.
    """
    x = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times)


def peak_flops_per_second() -> tuple[float, str]:
    """Peak FLOP/s of all devices together, and where the figure comes from.

    Accelerators: the vendor's dense bf16 figure times the device count. CPU: a measured
    matmul (all fake CPU devices share the same cores, so it is not multiplied).
    """
    devices = jax.devices()
    kind = devices[0].device_kind
    if devices[0].platform == "cpu":
        return measure_cpu_peak(), "measured f32 matmul on this host"
    for name, peak in _PEAK_BF16.items():
        if name.lower() in kind.lower():
            return peak * len(devices), f"{kind} dense bf16 data sheet x {len(devices)}"
    return float("nan"), f"unknown peak for {kind!r}"
