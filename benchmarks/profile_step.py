r"""Where a CPU train step's time goes: XLA ops of the jitted step grouped by class.

    python -m benchmarks.profile_step                      # reference config, batch 8
    python -m benchmarks.profile_step --variant=eigen_dots

Runs one timed call of the train step (`train_throughput.jax_runner`, `--steps` steps in
one jitted call) under `jax.profiler.trace`, reads the trace back with
`jax.profiler.ProfileData`, and sums the duration of every executed XLA op by class, read
from the optimized HLO of the compiled step: dots (YNNPACK / Eigen GEMMs and the fusions
around them), layout copies and transposes, the softmax / cross-entropy reductions, other
reductions, element-wise fusions (norms, GELU, the AdamW update). Durations are summed over
XLA's worker threads (a dot split over two cores counts twice), so compare the shares, not
the absolute sum with wall time. Also counts the bytes the step's top-level copies and
transposes write (a machine-independent figure). Prints a Markdown table; nothing is written.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
from pathlib import Path

from benchmarks import common


def hlo_ops(text: str) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
    """{instruction name: (opcode, called computation)} and each computation's lines."""
    computations: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            current = computations.setdefault(header.group(1), [])
        elif current is not None and line.startswith("  "):
            current.append(line)
    ops = {}
    for lines in computations.values():
        for line in lines:
            m = re.match(r"\s+(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][\w\-]*)\(", line)
            if m:
                called = re.search(r"calls=%?([\w.\-]+)", line)
                ops[m.group(1)] = (m.group(2), called.group(1) if called else "")
    return ops, computations


def op_class(opcode: str, called: str, computations: dict[str, list[str]]) -> str:
    """The class of one executed op (see the module docstring)."""
    if opcode in ("dot", "convolution"):
        return "dots"
    if opcode in ("copy", "transpose"):
        return "layout copies / transposes"
    if opcode != "fusion":
        return f"other ({opcode})"
    inner = {m.group(1) for line in computations.get(called, [])
             if (m := re.match(r"\s+(?:ROOT )?%?[\w.\-]+ = .*? ([a-z][\w\-]*)\(", line))}
    if inner & {"dot", "convolution"}:
        return "dots"
    if "reduce" in inner and inner & {"exponential", "log"}:
        return "softmax / cross-entropy"
    if inner & {"transpose", "copy"} and not inner & {"reduce"}:
        return "layout copies / transposes"
    if "reduce" in inner:
        return "other reductions"
    return "element-wise fusions"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="reference")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--variant", default="default", help="a train_throughput VARIANTS name")
    args = parser.parse_args(argv)
    common.set_xla_flags()

    import jax

    from benchmarks import train_throughput

    overrides, donate, options, one_call = train_throughput.VARIANTS[args.variant]
    config = train_throughput.model_config(args.size).replace(**overrides)
    run, _, compiled = train_throughput.jax_runner(
        config, args.batch, args.seq_len, args.steps, donate=donate,
        compiler_options=options, one_call=one_call, return_compiled=True)
    run()  # warm-up
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            run()
        trace = next(Path(trace_dir).rglob("*.xplane.pb"))
        profile = jax.profiler.ProfileData.from_file(str(trace))
    ops, computations = hlo_ops(compiled.as_text())
    seconds: collections.Counter = collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in ops:
                    seconds[op_class(*ops[event.name], computations)] += event.duration_ns / 1e9
    total = sum(seconds.values())
    rows = [[name, f"{s:.2f}", f"{100 * s / total:.1f} %"] for name, s in seconds.most_common()]
    copied = layout_copy_bytes(ops, computations)
    env = common.environment()
    report = "\n".join([
        f"Profile of `{args.size}`, batch {args.batch}, seq {args.seq_len}, {args.steps} "
        f"step(s), variant `{args.variant}` (`python -m benchmarks.profile_step "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`):",
        "",
        common.table(["op class", "op seconds (summed over threads)", "share"], rows),
        "",
        f"Top-level layout copies / transposes write {copied / 1e6:,.0f} MB per call.",
        "",
        common.cpu_heading(env) + f" Load average {env['load_average_1m']:.1f}.",
    ])
    print(report)
    return report


def layout_copy_bytes(ops: dict[str, tuple[str, str]],
                      computations: dict[str, list[str]]) -> int:
    """Bytes written by the executed (not fused-away) copies and transposes of the step."""
    fused = {called for _, called in ops.values() if called}
    total = 0
    for name, lines in computations.items():
        if name in fused:
            continue
        for line in lines:
            m = re.match(r"\s+(?:ROOT )?%?([\w.\-]+) = f32\[([0-9,]*)\]\S* ([a-z][\w\-]*)\(",
                         line)
            if m and op_class(*ops[m.group(1)], computations) == "layout copies / transposes":
                size = 4
                for dim in filter(None, m.group(2).split(",")):
                    size *= int(dim)
                total += size
    return total


if __name__ == "__main__":
    main(sys.argv[1:])
