r"""Training tokens/s vs model size (tiny -> reference -> gpt2_small), JAX and PyTorch, + plot.

    python -m benchmarks.model_sizes                  # writes benchmarks/model_sizes.png

Runs `benchmarks.train_throughput` for each size (batch 8, seq 256, float32, A/B
alternating) and writes the `model_sizes` section of BENCHMARKS.md and a log-log PNG. Each
timed call is `--steps` optimizer steps (default 4, JAX in one jitted call as the trainer
runs them; `--steps=1` makes JAX pay XLA CPU's per-call temporary buffer on every step).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import common, train_throughput

PLOT = Path(__file__).resolve().parent / "model_sizes.png"


def plot(results: list[dict], path: Path = PLOT) -> None:
    """Tokens/s against matmul parameters, one line per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    params = [r["params_matmul"] / 1e6 for r in results]
    for key, label in (("jax", "JAX (transformer_jax, jit)"),
                       ("torch", "PyTorch eager (transformers)")):
        if all(f"{key}_tokens_per_s" in r for r in results):
            ax.plot(params, [r[f"{key}_tokens_per_s"] for r in results], "o-", label=label)
    for p, r in zip(params, results, strict=True):
        ax.annotate(r["size"], (p, r["jax_tokens_per_s"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("matmul parameters (M)")
    ax.set_ylabel("training tokens/s")
    env = results[0]["env"]
    ax.set_title(f"batch 8 x seq 256, float32, {env['cores_used']} of {env['cpu_count']} "
                 f"cores of {env['cpu']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,reference,gpt2_small")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per timed call")
    parser.add_argument("--no_torch", action="store_true")
    parser.add_argument("--cpus", type=int, default=0,
                        help="pin both implementations to this many cores (0: all)")
    parser.add_argument("--jsonl", default=None)
    args = parser.parse_args(argv)
    common.pin_cpus(args.cpus)
    results = []
    for size in args.sizes.split(","):
        flags = [f"--size={size}", f"--steps={args.steps}", f"--reps={args.reps}", "--no_markdown",
                 "--label=model_sizes", "--no_torch_compile"]
        flags += ["--no_torch"] * args.no_torch + ([f"--jsonl={args.jsonl}"] if args.jsonl else [])
        results.append(train_throughput.main(flags))
    plot(results)
    rows = [[r["size"], f"{r['params_matmul'] / 1e6:.1f}", r["jax_tokens_per_s"],
             f"{r['jax_mfu']:.1%}", r.get("torch_tokens_per_s", "—"),
             f"{r['torch_mfu']:.1%}" if "torch_mfu" in r else "—",
             f"{r['ratio_jax_over_torch']:.2f}x" if "ratio_jax_over_torch" in r else "—"]
            for r in results]
    common.update_section("model_sizes" + common.section_suffix(results[0]["env"]), "\n".join([
        f"### Training tokens/s vs model size (batch 8, seq 256, float32, "
        f"{results[0]['env']['cores_used']} core(s))",
        "",
        f"Command: `python -m benchmarks.model_sizes --cpus={args.cpus} --steps={args.steps} "
        f"--reps={args.reps}`. {args.steps} optimizer step(s) per timed call (JAX: one jitted "
        f"call), {args.reps} alternating calls per implementation after one warm-up call; "
        "medians.",
        "",
        common.table(["size", "matmul params (M)", "JAX tokens/s", "JAX MFU",
                      "PyTorch tokens/s", "PyTorch MFU", "JAX / PyTorch"], rows),
        "",
        f"![tokens/s vs model size](benchmarks/{PLOT.name})",
        "",
        f"Peak: {results[0]['peak_source']}. "
        f"Environment: {common.environment_markdown(results[0]['env'])}.",
    ]))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
