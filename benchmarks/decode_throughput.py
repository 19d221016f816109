r"""Decoding throughput: greedy generation with the KV cache vs transformers' `model.generate`.

    python -m benchmarks.decode_throughput                # reference config, batch 1 and 8

A call generates exactly `--new_tokens` tokens after a `--prompt_len`-token prompt, greedy,
with the KV cache on both sides. JAX: `transformer_jax.generate` (prefill and the token loop
are one jitted `lax.while_loop`, no per-token Python). PyTorch: `GPT2LMHeadModel.generate`
(eager, `use_cache=True`), and the same with a static cache and transformers' compiled
decoding forward (`torch.compile`; its compiling first call is timed apart). Calls alternate
after warm-up; new tokens/s = B * new_tokens / median seconds. Prints JSON lines and writes
the `decode` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import common
from benchmarks.train_throughput import SIZES, model_config


def jax_runner(config, batch: int, prompt_len: int, new_tokens: int, int8: bool = False):
    """A callable doing one greedy generation of `new_tokens` tokens (waits for it).

    With `int8` the weights are int8 + per-channel scales (`compress/int8.py`), dequantized
    inside each decoding step (`Dequantizing`), so every step reads int8 weights.
    """
    import jax

    from transformer_jax.compress import int8 as int8_lib
    from transformer_jax.decoding.lm import generate
    from transformer_jax.models.gpt import GPT

    params = jax.jit(GPT(config).init)(
        jax.random.key(0), jax.numpy.zeros((1, prompt_len), jax.numpy.int32)
    )["params"]
    decoder = GPT(config.replace(decode=True, deterministic=True))
    if int8:
        params = int8_lib.nest(int8_lib.quantize(params))
        decoder = int8_lib.Dequantizing(decoder)
    prompt = jax.random.randint(jax.random.key(1), (batch, prompt_len), 4, config.vocab_size)

    def run() -> None:
        out = generate(decoder, params, prompt, max_new_tokens=new_tokens, temperature=0.0)
        out.block_until_ready()

    return run


def weight_stream_seconds(config, reps: int, passes: int = 32) -> float:
    """Median seconds to read every parameter once: batch-1 decoding's memory floor.

    A batch-1 decoding step multiplies one vector by every weight matrix, so it cannot beat
    the time to stream all parameters from memory. Measured as `passes` chained
    matrix-vector products per parameter leaf in one jitted loop (each pass's input depends
    on the previous pass, so XLA cannot hoist the reads out of the loop); returns seconds
    per pass.
    """
    import time

    import jax
    import jax.numpy as jnp

    from transformer_jax.models.gpt import GPT

    params = jax.jit(GPT(config).init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    mats = [leaf.reshape(leaf.shape[0], -1) for leaf in jax.tree.leaves(params)]
    width = max(m.shape[0] for m in mats)

    @jax.jit
    def stream(mats, x):
        def one_pass(_, x):
            total = sum(jnp.sum(x[: m.shape[0]] @ m) for m in mats)
            return x + 1e-9 * total

        return jax.lax.fori_loop(0, passes, one_pass, x)

    x = jnp.ones((width,), jnp.float32)
    stream(mats, x).block_until_ready()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        stream(mats, x).block_until_ready()
        times.append((time.perf_counter() - start) / passes)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="reference", choices=sorted(SIZES))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt_len", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--scan", choices=["default", "true", "false"], default="default")
    parser.add_argument("--xla_flags", default="")
    parser.add_argument("--no_torch", action="store_true")
    parser.add_argument("--no_torch_compile", action="store_true",
                        help="PyTorch eager only (no static cache + torch.compile reference)")
    parser.add_argument("--no_int8", action="store_true", help="skip the int8-weights row")
    parser.add_argument("--variants", choices=["", "scan", "unrolled"], default="",
                        help="also time JAX with scanned (or unrolled) layers, alternating")
    parser.add_argument("--cpus", type=int, default=0,
                        help="pin both implementations to this many cores (0: all)")
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--no_markdown", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    command = common.command_line("benchmarks.decode_throughput",
                                  sys.argv[1:] if argv is None else argv)
    common.set_xla_flags(args.xla_flags)
    common.pin_cpus(args.cpus)

    from benchmarks import torch_reference

    scan = {"default": None, "true": True, "false": False}[args.scan]
    config = model_config(args.size, scan_layers=scan)
    floor_s = weight_stream_seconds(config, reps=max(args.reps, 5))
    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        runs = {"jax": jax_runner(config, batch, args.prompt_len, args.new_tokens)}
        if args.variants:
            variant = config.replace(scan_layers=args.variants == "scan")
            runs[f"jax_{args.variants}"] = jax_runner(variant, batch, args.prompt_len,
                                                      args.new_tokens)
        if not args.no_int8:
            runs["jax_int8"] = jax_runner(config, batch, args.prompt_len, args.new_tokens,
                                          int8=True)
        compile_s = 0.0
        if not args.no_torch and torch_reference.is_gpt2_like(config):
            runs["torch"], _ = torch_reference.generate_runner(
                config, batch, args.prompt_len, args.new_tokens)
            if not args.no_torch_compile:
                runs["torch_compile"], compile_s = torch_reference.generate_runner(
                    config, batch, args.prompt_len, args.new_tokens, compile=True)
        times = common.time_alternating(runs, reps=args.reps, warmup=args.warmup)
        result = {
            "benchmark": "decode", "label": args.label, "size": args.size, "batch": batch,
            "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
            "scan_layers": config.scan_layers, "command": command,
            "env": common.environment(), "torch_compile_s": round(compile_s, 1),
        }
        for name, ts in times.items():
            result[f"{name}_tokens_per_s"] = round(batch * args.new_tokens / common.median(ts), 1)
            result[f"{name}_times_s"] = [round(t, 3) for t in ts]
        # At batch 1 each new token reads every weight once: the memory floor's tokens/s.
        result["weights_floor_tokens_per_s"] = round(batch / floor_s, 1) if batch == 1 else None
        if batch == 1:
            result["jax_fraction_of_floor"] = round(
                result["jax_tokens_per_s"] / result["weights_floor_tokens_per_s"], 3)
        if batch == 1 and "jax_int8" in times:
            result["jax_int8_fraction_of_floor"] = round(
                result["jax_int8_tokens_per_s"] / result["weights_floor_tokens_per_s"], 3)
        for ref in ("torch", "torch_compile"):
            if ref in times:
                result[f"ratio_jax_over_{ref}"] = round(
                    result["jax_tokens_per_s"] / result[f"{ref}_tokens_per_s"], 2)
                if "jax_int8" in times:
                    result[f"ratio_int8_over_{ref}"] = round(
                        result["jax_int8_tokens_per_s"] / result[f"{ref}_tokens_per_s"], 2)
        if "jax_int8" in times:
            result["int8_vs_float32"] = round(
                result["jax_int8_tokens_per_s"] / result["jax_tokens_per_s"], 2)
        if args.variants:
            result[f"jax_{args.variants}_vs_default"] = round(
                result[f"jax_{args.variants}_tokens_per_s"] / result["jax_tokens_per_s"], 3)
        common.emit(result, args.jsonl)
        results.append(result)
    if not args.no_markdown:
        name = f"decode_{args.size}" + ("_variants" if args.variants else "")
        common.update_section(name + common.section_suffix(results[0]["env"]),
                              markdown(results))
    return results


def markdown(results: list[dict]) -> str:
    """The Markdown section of the decoding measurements."""
    r0 = results[0]
    variant = next((k[:-len("_tokens_per_s")] for k in r0
                    if k.startswith("jax_") and k.endswith("_tokens_per_s")
                    and k not in ("jax_tokens_per_s", "jax_int8_tokens_per_s")), None)
    int8 = "jax_int8_tokens_per_s" in r0
    refs = [ref for ref in ("torch", "torch_compile") if f"{ref}_tokens_per_s" in r0]

    def ratios(r: dict, key: str) -> str:
        return " / ".join(f"**{r[f'ratio_{key}_over_{ref}']:.2f}x**" for ref in refs) or "—"

    rows = [[r["batch"], r["jax_tokens_per_s"]]
            + ([f"{r[f'{variant}_tokens_per_s']} ({r[f'{variant}_vs_default']:.2f}x)"]
               if variant else [])
            + ([f"{r['jax_int8_tokens_per_s']} ({r['int8_vs_float32']:.2f}x)"] if int8 else [])
            + [r.get(f"{ref}_tokens_per_s", "—") for ref in refs]
            + [ratios(r, "jax")] + ([ratios(r, "int8")] if int8 and refs else [])
            for r in results]
    names = {"torch": "PyTorch eager", "torch_compile": "PyTorch torch.compile"}
    vs = " / ".join(names[ref] for ref in refs) or "PyTorch"
    header = (["batch", f"JAX generate (jit while_loop), scan_layers={r0['scan_layers']}"]
              + ([f"JAX, scan_layers={not r0['scan_layers']}"] if variant else [])
              + (["JAX, int8 weights (vs float32)"] if int8 else [])
              + [{"torch": "PyTorch model.generate (eager)",
                  "torch_compile": "PyTorch generate, static cache + torch.compile"}[ref]
                 for ref in refs]
              + [f"JAX / {vs}"] + ([f"JAX int8 / {vs}"] if int8 and refs else []))
    floor = next((r for r in results if r.get("weights_floor_tokens_per_s")), None)
    floor_note = (
        f"Memory floor at batch 1 (every float32 weight read once per token, "
        f"`weight_stream_seconds`): {floor['weights_floor_tokens_per_s']} tokens/s; "
        f"JAX float32 reaches {100 * floor['jax_fraction_of_floor']:.0f} % of it"
        + (f", JAX int8 {100 * floor['jax_int8_fraction_of_floor']:.0f} %"
           if "jax_int8_fraction_of_floor" in floor else "") + "."
        if floor else "")
    compile_note = ", ".join(f"batch {r['batch']} {r['torch_compile_s']} s" for r in results
                             if r.get("torch_compile_s"))
    return common.section(
        f"### Decoding throughput: `{r0['size']}`, greedy, prompt {r0['prompt_len']}, "
        f"{r0['new_tokens']} new tokens",
        f"Command: `{r0['command']}`. "
        f"scan_layers={r0['scan_layers']}. New tokens/s, median of alternating calls"
        + (f"; torch.compile's first call (compilation, not timed): {compile_note}"
           if compile_note else "") + ".",
        r0["env"], common.table(header, rows), (floor_note,) if floor_note else ())


if __name__ == "__main__":
    main(sys.argv[1:])
