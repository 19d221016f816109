"""Model FLOPs per token for each family, device peak FLOP/s, and MFU.

Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B):

    6 * P_matmul + 12 * L * T * (N * H)

P_matmul counts the weights every token multiplies by: per layer the Q/K/V/O projections
(D*N*H + 2*D*K*H + N*H*D) and the MLP (2*D*F, or 3*D*F when gated), plus the output
projection V*D (counted even when tied to the input embedding; embedding lookups, norms and
biases are not matmuls). The second term is attention's QK^T and AV over a context of T
(causal masking not discounted, as in PaLM). Forward-only (decoding, eval) is a third of it.

The same accounting per family: a BERT encoder has no causal mask to discount either, and
its MLM head adds a D*D transform and the V*D decoder at every position (per-example heads,
the pooler and classifiers, are under 1/T of a layer and not counted). An encoder-decoder
runs the encoder over S source tokens and the decoder over T target tokens, whose layers add
cross-attention: Q/O projections per target token, K/V projections of the S encoder outputs,
and QK^T / AV over the S source positions.
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


def _layer_matmul_params(config: ModelConfig) -> tuple[int, int, int]:
    """(Q and O, K and V, MLP) matmul weights of one layer."""
    d, n, k, h, f = (
        config.d_model, config.num_heads, config.kv_heads, config.dim_per_head, config.mlp_dim
    )
    mlp = (3 if config.activation in ("swiglu", "geglu") else 2) * d * f
    return 2 * d * n * h, 2 * d * k * h, mlp


def matmul_params(config: ModelConfig) -> int:
    """P_matmul of a decoder-only model (see module docstring)."""
    qo, kv, mlp = _layer_matmul_params(config)
    return config.num_layers * (qo + kv + mlp) + config.vocab_size * config.d_model


def _attention_flops(layers: int, context: int, config: ModelConfig) -> float:
    """Training FLOPs per query token of QK^T and AV over `context` keys, in `layers` layers."""
    return 12.0 * layers * context * config.num_heads * config.dim_per_head


def train_flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Decoder-only (GPT): 6 * P_matmul + 12 * L * T * N * H."""
    return 6.0 * matmul_params(config) + _attention_flops(config.num_layers, seq_len, config)


def encoder_train_flops_per_token(config: ModelConfig, seq_len: int, *,
                                  vocab_head: bool) -> float:
    """A BERT encoder over T = `seq_len` tokens, with the MLM head when `vocab_head`."""
    qo, kv, mlp = _layer_matmul_params(config)
    params = config.num_layers * (qo + kv + mlp)
    if vocab_head:
        params += config.d_model * config.d_model + config.vocab_size * config.d_model
    return 6.0 * params + _attention_flops(config.num_layers, seq_len, config)


def encdec_train_flops_per_example(config: ModelConfig, source_len: int,
                                   target_len: int) -> float:
    """An encoder-decoder on one (S = `source_len`, T = `target_len`) example.

    Encoder: S tokens through L_enc layers. Decoder: T tokens through L_dec layers of causal
    self-attention (context T), cross-attention (context S; its K/V projections run on the S
    encoder outputs) and the MLP, then the V*D output projection.
    """
    qo, kv, mlp = _layer_matmul_params(config)
    enc_layers, dec_layers = config.num_layers, config.decoder_layers
    encoder = source_len * (6.0 * enc_layers * (qo + kv + mlp)
                            + _attention_flops(enc_layers, source_len, config))
    cross_kv = 6.0 * dec_layers * kv * source_len
    decoder = target_len * (
        6.0 * (dec_layers * (qo + kv + qo + mlp) + config.vocab_size * config.d_model)
        + _attention_flops(dec_layers, target_len + source_len, config))
    return encoder + cross_kv + decoder


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
