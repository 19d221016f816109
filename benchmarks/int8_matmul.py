r"""Which int8 matmul form beats float32 on this backend: the decoding step's products, alone.

    python -m benchmarks.int8_matmul                      # reference config, rows 1 and 8

Batch-1 decoding multiplies one activation row by every weight matrix, so it is bound by
reading the weights; int8 weights are a quarter of the bytes, but only a kernel that reads
them as int8 can turn that into speed. This times, on the model's own kernel shapes (each
reshaped to [inputs, outputs]; `--size` picks the config of `benchmarks.train_throughput`),
one pass of x[M, D] @ W over every kernel, chained `--passes` times in one jitted loop:

  float32        x @ W                                          (what float32 decoding does)
  int8 convert   (x @ q.astype(float32)) * s                    (`compress.int8`'s widening;
                                                                 scale on the product)
  int8 x int8    dot(int8(x / s_x), q) -> int32, * s_x * s      (W8A8: activations quantized
                                                                 per row at run time)

q is the per-output-channel int8 weight and s its scale (`compress.int8.quantize_array`).
Forms alternate; prints JSON lines (ms per pass, ratio to float32, weight bytes per second)
and writes the `int8_matmul` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from benchmarks import common
from benchmarks.train_throughput import SIZES, model_config

FORMS = ("float32", "int8 convert", "int8 x int8")


def kernels(config) -> list:
    """The model's matmul weights, each as a float32 [inputs, outputs] matrix."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from flax import traverse_util

    from transformer_jax.models.gpt import GPT

    params = jax.jit(GPT(config).init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    out = []
    for path, w in traverse_util.flatten_dict(nn.unbox(params)["params"]).items():
        if path[-1] == "kernel":  # out [N, H, D] contracts two axes, the others one
            out.append(w.reshape(-1, w.shape[-1]) if path[-2] == "out"
                       else w.reshape(w.shape[0], -1))
        elif path[-2:] == ("token_embed", "embedding") and config.tie_embeddings:
            out.append(w.T)  # the tied output projection x . E^T
    return out


def form(name: str, mats: list) -> tuple[list, Callable]:
    """(operands, product): the weights as `name` stores them, and y[M, F] = product(x, operand)."""
    import jax
    import jax.numpy as jnp

    from transformer_jax.compress.int8 import quantize_array

    if name == "float32":
        return mats, lambda x, w: x @ w
    operands = [quantize_array(w, (0,)) for w in mats]
    if name == "int8 convert":
        return operands, lambda x, q: (x @ q["int8"].astype(jnp.float32)) * q["scale"]

    def w8a8(x, q):
        s_x = jnp.maximum(jnp.max(jnp.abs(x), -1, keepdims=True), 1e-12) / 127.0
        x8 = jnp.round(x / s_x).astype(jnp.int8)
        y = jax.lax.dot_general(x8, q["int8"], (((1,), (0,)), ((), ())),
                                preferred_element_type=jnp.int32)
        return y.astype(jnp.float32) * s_x * q["scale"]

    return operands, w8a8


def form_runner(name: str, mats: list, rows: int, passes: int) -> Callable[[], None]:
    """One call = `passes` chained passes of form `name` over every matrix (waits for it)."""
    import jax
    import jax.numpy as jnp

    operands, product = form(name, mats)
    width = max(m.shape[0] for m in mats)

    @jax.jit
    def chained(operands, x):
        def one_pass(_, x):  # each pass's input depends on the last: no read is hoisted
            total = sum(jnp.sum(product(x[:, : w.shape[0]], o))
                        for w, o in zip(mats, operands, strict=True))
            return x + 1e-9 * total

        return jax.lax.fori_loop(0, passes, one_pass, x)

    x = jnp.ones((rows, width), jnp.float32)
    chained(operands, x).block_until_ready()  # compile

    def run() -> None:
        chained(operands, x).block_until_ready()

    return run


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="reference", choices=sorted(SIZES))
    parser.add_argument("--rows", default="1,8", help="activation rows M (the decoding batch)")
    parser.add_argument("--passes", type=int, default=16)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--xla_flags", default="")
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--no_markdown", action="store_true")
    args = parser.parse_args(argv)
    command = common.command_line("benchmarks.int8_matmul", sys.argv[1:] if argv is None else argv)
    common.set_xla_flags(args.xla_flags)

    config = model_config(args.size)
    mats = kernels(config)
    weight_bytes = {"float32": 4, "int8 convert": 1, "int8 x int8": 1}
    elements = sum(m.size for m in mats)
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        runs = {name: form_runner(name, mats, rows, args.passes) for name in FORMS}
        times = common.time_alternating(runs, reps=args.reps)
        ms = {name: 1e3 * common.median(ts) / args.passes for name, ts in times.items()}
        result = {"benchmark": "int8_matmul", "size": args.size, "rows": rows,
                  "matrices": len(mats), "weights": elements, "command": command,
                  "env": common.environment()}
        for name in FORMS:
            key = name.replace(" ", "_")
            result[f"{key}_ms"] = round(ms[name], 3)
            result[f"{key}_vs_float32"] = round(ms["float32"] / ms[name], 2)
            result[f"{key}_weight_gb_per_s"] = round(
                elements * weight_bytes[name] / (ms[name] * 1e-3) / 1e9, 1)
        common.emit(result, args.jsonl)
        results.append(result)
    if not args.no_markdown:
        common.update_section(f"int8_matmul_{args.size}"
                              + common.section_suffix(results[0]["env"]), markdown(results))
    return results


def markdown(results: list[dict]) -> str:
    """The Markdown section of these measurements."""
    r0 = results[0]
    header = ["rows M"] + [f"{name}: ms per pass (vs float32; weight GB/s)" for name in FORMS]
    rows = [[r["rows"]] + [
        f"{r[f'{k}_ms']} ({r[f'{k}_vs_float32']:.2f}x; {r[f'{k}_weight_gb_per_s']})"
        for k in (name.replace(' ', '_') for name in FORMS)] for r in results]
    return common.section(
        f"### int8 matmul forms: `{r0['size']}` kernels ({r0['matrices']} matrices, "
        f"{r0['weights']:,} weights)",
        f"Command: `{r0['command']}`. One pass = x[M, D] @ W for every kernel; median of "
        "alternating calls.",
        r0["env"], common.table(header, rows))


if __name__ == "__main__":
    main(sys.argv[1:])
