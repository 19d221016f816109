"""The per-family FLOP formulas (MFU's numerator) agree with XLA's own count of the forward.

Training FLOPs are 3x the forward's (backward = 2x forward), so a third of each formula must
match `cost_analysis()` of the jitted forward pass. XLA also counts element-wise work
(norms, softmax, GELU) that the matmul formulas leave out, so it reads a few percent higher;
a missing term (e.g. cross-attention, the MLM head) would be off by far more.
"""

import types

import jax
import jax.numpy as jnp
import pytest

from transformer_jax.models.bert import BertForPretraining
from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.models.gpt import GPT
from transformer_jax.train import flops

SIZES = dict(vocab_size=1024, num_layers=2, d_model=256, num_heads=4, mlp_dim=1024,
             max_len=128, scan_layers=False, deterministic=True)
B, T, S = 2, 64, 48  # batch, (target) length, source length


def xla_forward_flops(model, *inputs) -> float:
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))["params"]
    forward = jax.jit(lambda p, *a: model.apply({"params": p}, *a))
    return forward.lower(params, *inputs).compile().cost_analysis()["flops"]


def tokens(length: int) -> jax.Array:
    return jnp.zeros((B, length), jnp.int32)


@pytest.mark.parametrize("family", ["gpt", "bert", "encdec"])
def test_formula_matches_xla_count_of_the_forward(family):
    if family == "gpt":
        config = from_preset("gpt_tiny", **SIZES)
        counted = xla_forward_flops(GPT(config), tokens(T))
        formula = B * T * flops.train_flops_per_token(config, T)
    elif family == "bert":
        config = from_preset("bert_tiny", **SIZES)
        counted = xla_forward_flops(BertForPretraining(config), tokens(T), tokens(T))
        formula = B * T * flops.encoder_train_flops_per_token(config, T, vocab_head=True)
    else:
        config = from_preset("transformer_tiny", **SIZES)
        counted = xla_forward_flops(EncoderDecoder(config), tokens(S), tokens(T))
        formula = B * flops.encdec_train_flops_per_example(config, S, T)
    assert 0.97 < counted / (formula / 3) < 1.08


def test_cpu_peak_is_cached_per_machine_and_only_rises(tmp_path, monkeypatch):
    """A slower (busy-machine) measurement keeps the cached peak; a faster one raises it."""
    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path))
    measurements = iter([1.5e11, 0.6e11, 2.0e11, 1.0e11])
    monkeypatch.setattr(flops, "measure_cpu_peak", lambda repeats: next(measurements))
    assert flops.cached_cpu_peak() == 1.5e11
    path = flops.cpu_peak_cache_file()
    assert path.is_relative_to(tmp_path) and path.exists()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert flops.cached_cpu_peak() == 1.5e11  # busy now: the cached figure stands
    assert flops.cached_cpu_peak() == 2.0e11  # faster: it rises and is written
    path.write_text("{")  # damaged (or deleted): the new measurement replaces it
    assert flops.cached_cpu_peak() == 1.0e11


def test_cpu_peak_is_the_best_repetition(monkeypatch):
    """One slow (preempted) repetition does not lower the peak: the fastest one sets it."""
    times = iter([0.0, 1.0, 1.0, 1.5, 1.5, 3.5])  # start/end pairs: 1 s, 0.5 s, 2 s
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(times))
    assert flops.measure_cpu_peak(size=64, repeats=3) == 2.0 * 64**3 / 0.5


def test_achieved_rate_above_the_measured_peak_raises_it(tmp_path, monkeypatch):
    """A peak measured on a busy machine never lets MFU exceed 1: what ran raises it."""
    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path))
    assert flops.observe_cpu_flops(1.0e11, peak=2.0e11) == 2.0e11  # below: unchanged
    assert not flops.cpu_peak_cache_file().exists()
    assert flops.observe_cpu_flops(3.0e11, peak=2.0e11) == 3.0e11
    monkeypatch.setattr(flops, "measure_cpu_peak", lambda repeats: 1.0e11)  # busy again
    assert flops.cached_cpu_peak() == 3.0e11  # later runs start from the achieved rate


def test_progress_bar_mfu_never_exceeds_one(tmp_path, monkeypatch):
    """The trainer's MFU stays <= 1 when a step runs faster than the measured peak."""
    from transformer_jax.run import train_metrics

    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(flops, "measure_cpu_peak", lambda repeats: 1.0e9)  # a too-low peak
    clock = iter([0.0, 1.0, 1.0, 3.0, 3.0])
    monkeypatch.setattr(train_metrics, "time",
                        types.SimpleNamespace(perf_counter=lambda: next(clock)))
    throughput = train_metrics.Throughput(flops_per_token=1.0e6)
    fast = throughput.measure(1, {1: 2000.0})  # 2e9 FLOP/s achieved in 1 s
    assert fast["mfu"] == 1.0 and throughput.peak == 2.0e9
    slow = throughput.measure(2, {2: 2000.0})  # then 2 s for the same work
    assert slow["mfu"] == 0.5
