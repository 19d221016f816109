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

import hashlib
import json
import math
import os
import pathlib
import platform
import re
import tempfile
import time

import jax
import jax.numpy as jnp

from transformer_jax.data import tokenizer
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
    mlp = (3 if config.activation in ("swiglu", "geglu", "geglu_tanh") else 2) * d * f
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


def measure_cpu_peak(size: int = 2048, repeats: int = 10) -> float:
    """The host's f32 matmul FLOP/s: the best of `repeats` jitted [size, size] matmuls.

    The best, not the median: on a shared machine other work only ever slows a repetition
    down, so the fastest one is the nearest to what the cores can do, and a peak that is too
    low would put MFU above 100 %. 2048 (17 GFLOP) is large enough for the matmul to reach
    full speed on every core.
    """
    x = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if (
        cpuinfo.exists()) else None
    return found.group(1).strip() if found else platform.processor()


def cpu_peak_cache_file() -> pathlib.Path:
    """Where this machine's measured peak is kept: keyed on CPU model, cores and jax version."""
    key = f"{_cpu_model()}|{os.cpu_count()}|{jax.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return tokenizer.default_cache_dir() / "cpu_peak" / f"{digest}.json"


def _read_cached_peak(path: pathlib.Path) -> float:
    try:
        return float(json.loads(path.read_text())["flops_per_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0  # missing or damaged: the next figure replaces it


def _write_cached_peak(path: pathlib.Path, peak: float, source: str) -> None:
    """Writes `peak` atomically (a temporary file, then a rename): no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump({"flops_per_s": peak, "source": source, "cpu": _cpu_model(),
                   "cores": os.cpu_count(), "jax": jax.__version__}, f)
    os.replace(f.name, path)


def cached_cpu_peak(repeats: int = 3) -> float:
    """This machine's best f32 FLOP/s so far: the cached figure, raised by a new check.

    Each call runs `measure_cpu_peak(repeats=repeats)` and keeps the higher of it and the
    figure in `cpu_peak_cache_file` (written when it rises). A measurement on a busy machine
    can only be too low, and a low peak would put MFU above 100 %: so the figure only rises,
    toward what the cores can do, and every run (trainer, benchmarks) shares it. Any rate a
    run actually achieves raises it too (`observe_cpu_flops`).
    """
    path = cpu_peak_cache_file()
    cached = _read_cached_peak(path)
    peak = measure_cpu_peak(repeats=repeats)
    if peak <= cached:
        return cached
    _write_cached_peak(path, peak, f"best of {repeats} jitted f32 2048x2048 matmuls")
    return peak


def observe_cpu_flops(achieved: float, peak: float) -> float:
    """The CPU peak to divide by after a run achieved `achieved` FLOP/s: never below it.

    A matmul peak measured while other jobs held the cores is too low, and the model FLOP/s
    a training step achieves on a quieter moment can then exceed it (MFU 129 % was seen).
    Model FLOPs are work the cores really did, so the true peak is at least the achieved
    rate: the returned peak is max(`peak`, `achieved`), and a new maximum is written to
    `cpu_peak_cache_file` for later runs. MFU = achieved / returned peak is thus <= 1.
    """
    if not achieved > peak:  # also false for NaN
        return peak
    path = cpu_peak_cache_file()
    if achieved > _read_cached_peak(path):
        _write_cached_peak(path, achieved, "model FLOP/s achieved by a run")
    return achieved


def peak_flops_per_second() -> tuple[float, str]:
    """Peak FLOP/s of all devices together, and where the figure comes from.

    Accelerators: the vendor's dense bf16 figure times the device count. CPU: this
    machine's cached figure (`cpu_peak_cache_file`; all fake CPU devices share the same
    cores, so it is not multiplied), raised by one more timed matmul per run
    (`cached_cpu_peak(repeats=1)`: a figure first measured on a busy machine must not stick),
    by every run's achieved rate (`observe_cpu_flops`) and by each benchmark.
    """
    devices = jax.devices()
    kind = devices[0].device_kind
    if devices[0].platform == "cpu":
        return (cached_cpu_peak(repeats=1),
                f"measured f32 matmul on this host ({cpu_peak_cache_file()})")
    for name, peak in _PEAK_BF16.items():
        if name.lower() in kind.lower():
            return peak * len(devices), f"{kind} dense bf16 data sheet x {len(devices)}"
    return float("nan"), f"unknown peak for {kind!r}"
