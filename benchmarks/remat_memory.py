r"""Compiled memory of the train step per remat policy (`.lower().compile().memory_analysis()`).

    python -m benchmarks.remat_memory                           # reference sizes, seq 1024
    python -m benchmarks.remat_memory --size=gpt_1b --seq_len=2048 --batch=8   # on a GPU

Nothing is executed: each policy's jitted train step is compiled for abstract inputs and
XLA's buffer assignment is read back. `temp` is what the step needs besides its arguments
and outputs (saved activations + workspace), the part remat trades for recomputation.
Writes the `remat_<size>` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

from benchmarks import common
from benchmarks.train_throughput import SIZES, model_config

POLICIES = ("none", "dots", "dots_with_no_batch_dims", "full")


def compiled_memory(config, batch: int, seq_len: int) -> dict:
    """Memory statistics (bytes) and compile seconds of one compiled train step."""
    import jax
    import jax.numpy as jnp
    import optax

    from transformer_jax import sharding
    from transformer_jax.models.gpt import GPT
    from transformer_jax.tasks.lm import lm_loss_fn
    from transformer_jax.train.state import state_shardings
    from transformer_jax.train.step import train_step

    model = GPT(config)
    optimizer = optax.adamw(1e-3, b1=0.9, b2=0.95, weight_decay=0.1)
    mesh = sharding.make_mesh(data=-1, fsdp=1, tensor=1)
    dummy = jnp.zeros((1, seq_len), jnp.int32)
    with jax.set_mesh(mesh):
        abstract, shardings = state_shardings(
            lambda key: model.init(key, dummy)["params"], optimizer, mesh)
        tokens = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32)
        data = {k: tokens for k in ("inputs", "targets", "segment_ids", "positions")}
        step = jax.jit(
            functools.partial(train_step, loss_fn=lm_loss_fn(model), optimizer=optimizer,
                              schedule=lambda s: 1e-3),
            in_shardings=(shardings, sharding.batch_sharding(mesh), None),
            out_shardings=(shardings, None), donate_argnums=0,
        )
        start = time.perf_counter()
        compiled = step.lower(abstract, data, jax.random.key(0)).compile()
        seconds = time.perf_counter() - start
    stats = compiled.memory_analysis()
    return {
        "argument_bytes": stats.argument_size_in_bytes,
        "output_bytes": stats.output_size_in_bytes,
        "alias_bytes": stats.alias_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "total_bytes": (stats.argument_size_in_bytes + stats.output_size_in_bytes
                        - stats.alias_size_in_bytes + stats.temp_size_in_bytes),
        "compile_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="reference", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=1024)
    parser.add_argument("--scan", choices=["true", "false"], default="true")
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--no_markdown", action="store_true")
    args = parser.parse_args(argv)
    common.set_xla_flags()
    results = []
    env = None
    for policy in POLICIES:
        config = model_config(args.size, remat_policy=policy, scan_layers=args.scan == "true")
        if args.seq_len > config.max_len:
            config = config.replace(max_len=args.seq_len)
        env = env or common.environment()
        result = {"benchmark": "remat_memory", "size": args.size, "batch": args.batch,
                  "seq_len": args.seq_len, "remat_policy": policy, "dtype": config.dtype,
                  "scan_layers": config.scan_layers, "env": env,
                  **compiled_memory(config, args.batch, args.seq_len)}
        common.emit(result, args.jsonl)
        results.append(result)
    if not args.no_markdown:
        mib = 2**20
        rows = [[r["remat_policy"], f"{r['temp_bytes'] / mib:,.0f}",
                 f"{r['argument_bytes'] / mib:,.0f}", f"{r['total_bytes'] / mib:,.0f}",
                 r["compile_s"]] for r in results]
        r0 = results[0]
        common.update_section(f"remat_{args.size}", "\n".join([
            f"### Compiled train-step memory per remat policy: `{args.size}`, batch "
            f"{args.batch}, seq {args.seq_len}, {r0['dtype']}, scan_layers={r0['scan_layers']}",
            "",
            f"Command: `python -m benchmarks.remat_memory --size={args.size} "
            f"--seq_len={args.seq_len} --batch={args.batch}`. From "
            "`jax.jit(train_step).lower(...).compile().memory_analysis()` on "
            f"`{r0['env']['device']}` (no step is run). temp = saved activations + workspace.",
            "",
            common.table(["remat policy", "temp MiB", "arguments MiB (state + batch)",
                          "total MiB", "compile s"], rows),
        ]))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
