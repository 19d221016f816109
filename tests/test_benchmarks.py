"""Smoke test of the benchmark harness's JAX side (no PyTorch, no timing asserts)."""

import math

import jax

from benchmarks import common, decode_throughput, train_throughput


def test_harness_jax_side_runs_on_a_tiny_config(tmp_path):
    config = train_throughput.model_config(
        "tiny", num_layers=2, d_model=32, num_heads=2, mlp_dim=64, vocab_size=128, max_len=32
    )
    assert config.scan_layers == (jax.default_backend() != "cpu")  # what users run here
    # Batch 8: the harness's mesh is data-parallel over the 8 test devices.
    train, compile_s = train_throughput.jax_runner(config, batch=8, seq_len=16, steps=2)
    decode = decode_throughput.jax_runner(config, batch=2, prompt_len=4, new_tokens=8)
    times = common.time_alternating({"train": train, "decode": decode}, reps=1, warmup=1)
    assert compile_s > 0 and all(len(t) == 1 and min(t) > 0 for t in times.values())
    floor = decode_throughput.weight_stream_seconds(config, reps=1, passes=2)
    assert floor > 0 and math.isfinite(floor)

    peak, source = common.device_peak(repeats=1)
    assert peak > 0 and math.isfinite(peak)
    assert ("measured" in source) == (jax.default_backend() == "cpu")

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nintro\n")
    common.update_section("x", "first", out)
    common.update_section("y", "other", out)
    common.update_section("x", "second", out)
    text = out.read_text()
    assert "intro" in text and "second" in text and "other" in text and "first" not in text
