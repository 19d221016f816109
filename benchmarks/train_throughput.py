r"""Training throughput and MFU: the jitted train step vs the PyTorch (transformers) reference.

    python -m benchmarks.train_throughput                 # the reference config, CPU, A/B
    python -m benchmarks.train_throughput --size=gpt2_small --reps=3
    python -m benchmarks.train_throughput --gpu           # GPT ~1B, bf16, seq 2048, cudnn

One call of each side = `--steps` optimizer steps (forward, backward, AdamW) on one [B, T]
batch already on the device: JAX runs them inside one jitted call, as the trainer does
(`train_steps`, `train.steps_per_call`; the `one_step_per_call` variant dispatches each step
alone), PyTorch eagerly one after another. JAX and PyTorch calls alternate after `--warmup`
calls each, and the medians and their ratio are reported. Prints one JSON line per
measurement and writes the `train` section of BENCHMARKS.md (`--no_markdown` to skip).
`--variants`, `--scan`, `--xla_flags` and `--no_donate` switch single optimizations off/on
to measure what each contributes.

MFU = tokens/s * F / peak, F = 6 * P_matmul + 12 * L * T * N * H training FLOPs per token
(transformer_jax/train/flops.py); peak = a measured f32 matmul on CPU, the vendor's dense
bf16 figure on GPU/TPU.
"""

from __future__ import annotations

import argparse
import functools
import sys

from benchmarks import common

# Model sizes (ModelConfig overrides of the gpt_tiny preset, or a preset name).
SIZES: dict[str, dict] = {
    "tiny": dict(preset="gpt_tiny"),
    # The reference configuration.
    "reference": dict(preset="gpt_tiny", num_layers=6, d_model=512, num_heads=8,
                      mlp_dim=2048, vocab_size=8000, max_len=256),
    "gpt2_small": dict(preset="gpt2_small", dropout_rate=0.0, attention_dropout_rate=0.0),
    # The accelerator path: ~1B params, bf16 compute, long context, cuDNN flash attention,
    # projections saved and attention recomputed in the backward pass.
    "gpt_1b": dict(preset="gpt_1b", dtype="bfloat16", attention_impl="cudnn",
                   remat_policy="dots_with_no_batch_dims"),
}

# Single changes against the default JAX setup, for `--variants` (what each one contributes):
# (ModelConfig overrides, donate the state, per-compilation XLA options, all steps of a timed
# call in one jitted call).
VARIANTS: dict[str, tuple[dict, bool, dict, bool]] = {
    "default": ({}, True, {}, True),
    "one_step_per_call": ({}, True, {}, False),
    "scan": ({"scan_layers": True}, True, {}, True),
    "unrolled": ({"scan_layers": False}, True, {}, True),
    "no_donate": ({}, False, {}, True),
    "fast_math": ({}, True, {"xla_cpu_enable_fast_math": True}, True),
    "vector_width_512": ({}, True, {"xla_cpu_prefer_vector_width": 512}, True),
    "xnnpack": ({}, True, {"xla_cpu_use_xnnpack": True}, True),
    "remat_dots": ({"remat_policy": "dots"}, True, {}, True),
    # XLA CPU's GEMM libraries (jax 0.10.2 runs dots through YNNPACK by default): Eigen's
    # GEMM alone (no YNNPACK fusions), YNNPACK for individual dots only (no element-wise or
    # reduction YNN fusions), oneDNN's matmul where XLA offers it.
    "eigen_dots": ({}, True, {"xla_cpu_experimental_ynn_fusion_type": ""}, True),
    "ynn_dots_only": ({}, True, {"xla_cpu_experimental_ynn_fusion_type":
                                 "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}, True),
    "onednn_dots": ({}, True, {"xla_cpu_experimental_ynn_fusion_type": "",
                               "xla_cpu_experimental_onednn_fusion_type":
                               "LIBRARY_FUSION_TYPE_DOT"}, True),
}


def model_config(size: str, **overrides):
    """The `ModelConfig` of a named size with the experiment defaults of this backend.

    Built like `experiments/train.py` builds it (`model_config_from`: float32 and unrolled
    layers on CPU, bf16 compute on accelerators), so the harness measures what users run.
    None overrides keep those defaults.
    """
    from transformer_jax.models.config import model_config_from

    return model_config_from({**SIZES[size], **overrides})


def jax_runner(config, batch: int, seq_len: int, steps: int, *, donate: bool = True,
               compiler_options: dict | None = None, one_call: bool = True,
               lr: float = 1e-3, return_compiled: bool = False):
    """A callable doing `steps` jitted train steps on one batch; waits only at the end.

    Same optimizer work as the reference: AdamW (b1 0.9, b2 0.95, weight decay 0.1), no
    clipping. `one_call`: all `steps` in one jitted call (`train_steps`, the trainer's
    `train.steps_per_call`), else one call per step. `compiler_options` are XLA debug options
    for this compilation only (e.g. `{"xla_cpu_enable_fast_math": True}`).
    Returns (run, compile_seconds), and the compiled step too with `return_compiled`.
    """
    import time

    import jax
    import jax.numpy as jnp
    import optax

    from transformer_jax import sharding
    from transformer_jax.models.gpt import GPT
    from transformer_jax.tasks.lm import lm_loss_fn
    from transformer_jax.train.state import create_sharded_state
    from transformer_jax.train.step import train_step, train_steps

    model = GPT(config)
    optimizer = optax.adamw(lr, b1=0.9, b2=0.95, weight_decay=0.1)
    mesh = sharding.make_mesh(data=-1, fsdp=1, tensor=1)
    state, shardings = create_sharded_state(model, optimizer, mesh, jax.random.key(0), seq_len)
    tokens = jax.random.randint(jax.random.key(1), (batch, seq_len + 1), 4, config.vocab_size)
    data = {
        "inputs": tokens[:, :-1],
        "targets": tokens[:, 1:],
        "segment_ids": jnp.ones((batch, seq_len), jnp.int32),
        "positions": jnp.broadcast_to(jnp.arange(seq_len, dtype=jnp.int32), (batch, seq_len)),
    }
    data_sharding = sharding.batch_sharding(mesh)
    if one_call:  # the same batch for each step: [steps, B, T]
        data = jax.tree.map(lambda x: jnp.broadcast_to(x, (steps, *x.shape)), data)
        data_sharding = sharding.steps_sharding(mesh)
    data = jax.device_put(data, data_sharding)
    step = jax.jit(
        functools.partial(train_steps if one_call else train_step, loss_fn=lm_loss_fn(model),
                          optimizer=optimizer, schedule=lambda s: lr),
        in_shardings=(shardings, data_sharding, None),
        out_shardings=(shardings, None),
        donate_argnums=0 if donate else (),
    )
    rng = jax.random.key(2)
    start = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = step.lower(state, data, rng).compile(compiler_options=compiler_options)
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def run() -> None:
        state, metrics = holder["state"], None
        for _ in range(1 if one_call else steps):
            state, metrics = compiled(state, data, rng)
        holder["state"] = state
        metrics["loss"].block_until_ready()

    return (run, compile_s, compiled) if return_compiled else (run, compile_s)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="reference", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4,
                        help="optimizer steps per timed call (JAX: in one jitted call)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per implementation")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--scan", choices=["default", "true", "false"], default="default")
    parser.add_argument("--remat", default=None, help="remat_policy override")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--attention_impl", default=None)
    parser.add_argument("--xla_flags", default="", help="extra XLA_FLAGS for this run")
    parser.add_argument("--no_donate", action="store_true")
    parser.add_argument("--no_torch", action="store_true")
    parser.add_argument("--no_torch_compile", action="store_true",
                        help="PyTorch eager only (no torch.compile reference)")
    parser.add_argument("--cpus", type=int, default=0,
                        help="pin both implementations to this many cores (0: all)")
    parser.add_argument("--variants", default="",
                        help=f"comma-separated JAX variants to alternate: {sorted(VARIANTS)}")
    parser.add_argument("--gpu", action="store_true",
                        help="the accelerator config: --size=gpt_1b --seq_len=2048 --batch=8")
    parser.add_argument("--jsonl", default=None, help="also append JSON lines to this file")
    parser.add_argument("--no_markdown", action="store_true")
    parser.add_argument("--label", default="", help="a name for this run in the JSON line")
    args = parser.parse_args(argv)
    command = common.command_line("benchmarks.train_throughput",
                                  sys.argv[1:] if argv is None else argv)
    if args.gpu:
        args.size, args.seq_len, args.no_torch = "gpt_1b", 2048, True
    common.set_xla_flags(args.xla_flags)
    common.pin_cpus(args.cpus)

    from transformer_jax.train import flops

    scan = {"default": None, "true": True, "false": False}[args.scan]
    config = model_config(args.size, scan_layers=scan, remat_policy=args.remat,
                          dtype=args.dtype, attention_impl=args.attention_impl)
    if args.seq_len > config.max_len:
        config = config.replace(max_len=args.seq_len)
    peak, peak_source = common.device_peak()
    flops_per_token = flops.train_flops_per_token(config, args.seq_len)
    tokens = args.batch * args.seq_len * args.steps

    runs, compile_s = {}, {}
    variants = ["default"] + [v for v in args.variants.split(",") if v and v != "default"]
    for name in variants:
        overrides, donate, options, one_call = VARIANTS[name]
        variant = config.replace(**overrides)
        label = "jax" if name == "default" else f"jax_{name}"
        runs[label], compile_s[label] = jax_runner(
            variant, args.batch, args.seq_len, args.steps,
            donate=donate and not args.no_donate, compiler_options=options, one_call=one_call)
    from benchmarks import torch_reference

    if not args.no_torch and torch_reference.is_gpt2_like(config):
        runs["torch"], _ = torch_reference.train_runner(config, args.batch, args.seq_len,
                                                        args.steps)
        if not args.no_torch_compile:
            runs["torch_compile"], compile_s["torch_compile"] = torch_reference.train_runner(
                config, args.batch, args.seq_len, args.steps, compile=True)
    times = common.time_alternating(runs, reps=args.reps, warmup=args.warmup)
    env = common.environment()
    peak, peak_source = common.robust_peak(
        peak, peak_source, [tokens / min(ts) * flops_per_token for ts in times.values()])
    result = {
        "benchmark": "train", "label": args.label, "size": args.size, "batch": args.batch,
        "seq_len": args.seq_len, "steps_per_call": args.steps,
        "scan_layers": config.scan_layers, "dtype": config.dtype,
        "remat_policy": config.remat_policy, "attention_impl": config.attention_impl,
        "donate": not args.no_donate, "params_matmul": flops.matmul_params(config),
        "flops_per_token": flops_per_token, "peak_flops": peak, "peak_source": peak_source,
        "jax_compile_s": round(compile_s["jax"], 2), "command": command, "env": env,
        "torch_compile_s": round(compile_s.get("torch_compile", 0.0), 1),
    }
    for name, ts in times.items():
        tps = tokens / common.median(ts)
        result[f"{name}_tokens_per_s"] = round(tps, 1)
        result[f"{name}_mfu"] = round(tps * flops_per_token / peak, 4)
        result[f"{name}_times_s"] = [round(t, 3) for t in ts]
    for ref in ("torch", "torch_compile"):
        if ref in times:
            result[f"ratio_jax_over_{ref}"] = round(
                result["jax_tokens_per_s"] / result[f"{ref}_tokens_per_s"], 3)
    for name in variants[1:]:
        result[f"jax_{name}_vs_default"] = round(
            result[f"jax_{name}_tokens_per_s"] / result["jax_tokens_per_s"], 3)
    common.emit(result, args.jsonl)
    if not args.no_markdown and len(variants) > 1:
        common.update_section(f"variants_{args.size}_b{args.batch}" + common.section_suffix(env),
                              variants_markdown(result, variants))
    if not args.no_markdown and (len(variants) == 1 or "torch" in times):
        common.update_section(f"train_{args.size}" + common.section_suffix(env),
                              markdown(result))
    return result


def variants_markdown(r: dict, variants: list[str]) -> str:
    """The Markdown section of a `--variants` run: each single change against the default."""
    rows = []
    for name in variants:
        key = "jax" if name == "default" else f"jax_{name}"
        overrides, donate, options, one_call = VARIANTS[name]
        change = ", ".join([f"{k}={v!r}" for k, v in {**overrides, **options}.items()]
                           + ([] if donate else ["no state donation"])
                           + ([] if one_call else ["one jitted call per step"])) or "—"
        rows.append([name, change, r[f"{key}_tokens_per_s"],
                     f"{r.get(f'{key}_vs_default', 1.0):.3f}",
                     " ".join(f"{t:.2f}" for t in r[f"{key}_times_s"])])
    for ref, name in (("torch", "PyTorch eager"), ("torch_compile", "torch.compile")):
        if f"{ref}_tokens_per_s" in r:
            rows.append([name, "reference", r[f"{ref}_tokens_per_s"],
                         f"{r[f'{ref}_tokens_per_s'] / r['jax_tokens_per_s']:.3f}",
                         " ".join(f"{t:.2f}" for t in r[f"{ref}_times_s"])])
    return "\n".join([
        f"### What each change contributes: `{r['size']}`, batch {r['batch']}, seq "
        f"{r['seq_len']}, {r['dtype']} (JAX variants alternating in one process)",
        "",
        common.cpu_heading(r["env"]),
        "",
        f"Command: `{r['command']}`. default = scan_layers={r['scan_layers']}, "
        f"remat={r['remat_policy']}, state donated, {r['steps_per_call']} steps per jitted "
        "call, no extra XLA options.",
        "",
        common.table(["variant", "change", "tokens/s (median)", "vs default",
                      "seconds per call"], rows),
        "",
        f"Environment: {common.environment_markdown(r['env'])}.",
    ])


def markdown(r: dict) -> str:
    """The Markdown section of one training measurement."""
    rows = [["JAX (this repo, jit)", r["jax_tokens_per_s"], f"{r['jax_mfu']:.1%}",
             " ".join(f"{t:.2f}" for t in r["jax_times_s"])]]
    for ref, name in (("torch", "PyTorch eager (transformers GPT2LMHeadModel)"),
                      ("torch_compile", "PyTorch torch.compile (inductor, same model)")):
        if f"{ref}_tokens_per_s" in r:
            rows.append([name, r[f"{ref}_tokens_per_s"], f"{r[f'{ref}_mfu']:.1%}",
                         " ".join(f"{t:.2f}" for t in r[f"{ref}_times_s"])])
    ratios = [f"**JAX / {name} = {r[f'ratio_jax_over_{ref}']:.2f}x**"
              for ref, name in (("torch", "PyTorch eager"), ("torch_compile", "torch.compile"))
              if f"ratio_jax_over_{ref}" in r]
    ratio = "; ".join(ratios) or "(no PyTorch reference in this run)"
    return "\n".join([
        f"### Training throughput: `{r['size']}`, batch {r['batch']}, seq {r['seq_len']}, "
        f"{r['dtype']}",
        "",
        f"Command: `{r['command']}`. "
        f"scan_layers={r['scan_layers']}, remat={r['remat_policy']}, "
        f"attention={r['attention_impl']}, donation={r['donate']}, "
        f"{r['steps_per_call']} steps per call (JAX: one jitted call); JAX compile "
        f"{r['jax_compile_s']} s" + (f", torch.compile {r['torch_compile_s']} s (first call, "
                                      "not timed)" if r.get("torch_compile_s") else "")
        + f". FLOPs/token {r['flops_per_token'] / 1e6:.1f} M; peak {r['peak_source']}.",
        "",
        common.cpu_heading(r["env"]),
        "",
        common.table(["implementation", "tokens/s (median)", "MFU", "seconds per call"], rows),
        "",
        ratio,
        "",
        f"Environment: {common.environment_markdown(r['env'])}.",
    ])


if __name__ == "__main__":
    main(sys.argv[1:])
