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


def test_profile_step_classes_ops_and_counts_copy_bytes():
    """The profile's op classes come from the optimized HLO: dots, copies, reductions."""
    from benchmarks import profile_step

    hlo = """HloModule m

%fused_t (p: f32[4,8]) -> f32[8,4] {
  %p = f32[4,8]{1,0} parameter(0)
  ROOT %t = f32[8,4]{1,0} transpose(%p), dimensions={1,0}
}

%fused_dot (a: f32[4,8], b: f32[8,4]) -> f32[4,4] {
  %a = f32[4,8]{1,0} parameter(0)
  %b = f32[8,4]{1,0} parameter(1)
  ROOT %d = f32[4,4]{1,0} dot(%a, %b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (x: f32[4,8]) -> f32[4,4] {
  %x = f32[4,8]{1,0} parameter(0)
  %copy_fusion = f32[8,4]{1,0} fusion(%x), kind=kLoop, calls=%fused_t
  ROOT %ynn_fusion = f32[4,4]{1,0} fusion(%x, %copy_fusion), kind=kCustom, calls=%fused_dot
}
"""
    ops, computations = profile_step.hlo_ops(hlo)
    assert profile_step.op_class(*ops["ynn_fusion"], computations) == "dots"
    assert profile_step.op_class(*ops["copy_fusion"], computations) == (
        "layout copies / transposes")
    assert profile_step.layout_copy_bytes(ops, computations) == 8 * 4 * 4


def test_int8_matmul_forms_compute_the_float32_products():
    """Every form the int8 benchmark times computes x @ W of the model's kernels (within int8
    rounding), so its timings compare the same products."""
    import jax.numpy as jnp

    from benchmarks import int8_matmul

    config = train_throughput.model_config(
        "tiny", num_layers=1, d_model=32, num_heads=2, mlp_dim=64, vocab_size=128, max_len=32
    )
    mats = int8_matmul.kernels(config)
    # q, k, v, out, wi, wo and the tied output projection, each [inputs, outputs].
    assert sorted(m.shape for m in mats) == sorted(
        [(32, 32)] * 4 + [(32, 64), (64, 32), (32, 128)])
    x = jax.random.normal(jax.random.key(0), (8, 64))
    for name in int8_matmul.FORMS:
        operands, product = int8_matmul.form(name, mats)
        for w, o in zip(mats, operands, strict=True):
            want = x[:, : w.shape[0]] @ w
            got = product(x[:, : w.shape[0]], o)
            assert got.shape == want.shape
            assert float(jnp.max(jnp.abs(got - want))) <= 0.02 * float(jnp.max(jnp.abs(want)))
    run = int8_matmul.form_runner("int8 x int8", mats, rows=1, passes=2)
    run()
