"""Shared benchmark machinery: XLA flags, peak FLOP/s, A/B timing, JSON lines, BENCHMARKS.md.

Import this module before JAX in a benchmark script: `set_xla_flags()` must run before the
XLA backend starts.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "BENCHMARKS.md"

# XLA CPU flags the harness runs JAX with (measured to help in BENCHMARKS.md; users on CPU
# can export the same XLA_FLAGS). Empty: the defaults were as fast as anything tried.
CPU_XLA_FLAGS: tuple[str, ...] = ()


def set_xla_flags(extra: str = "") -> str:
    """Appends the harness's CPU flags (and `extra`) to XLA_FLAGS; returns the result."""
    flags = " ".join([os.environ.get("XLA_FLAGS", ""), *CPU_XLA_FLAGS, extra]).strip()
    os.environ["XLA_FLAGS"] = flags
    return flags


def pin_cpus(count: int) -> None:
    """Restricts this process (XLA's and PyTorch's thread pools alike) to `count` cores.

    Call before importing JAX or PyTorch; 0 leaves all cores. A comparison on one pinned core
    shows the per-core efficiency without the thread-synchronization cost that a machine
    shared with other jobs adds (PyTorch's OpenMP barriers suffer most from it).
    """
    if count:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:count])


def device_peak(repeats: int = 10) -> tuple[float, str]:
    """Peak FLOP/s for MFU and its source: measured on CPU, the data sheet on GPU/TPU.

    CPU: the best of `repeats` jitted f32 2048x2048 matmuls now, or the machine's cached best
    (`flops.cached_cpu_peak`, the figure the trainer's progress bar divides by) if higher.
    `robust_peak` then raises it to any rate the run itself achieved.
    """
    import jax

    from transformer_jax.train import flops

    if jax.devices()[0].platform == "cpu":
        peak = flops.cached_cpu_peak(repeats=repeats)
        return peak, (f"measured: max of this run's best of {repeats} jitted f32 2048x2048 "
                      f"matmuls and this machine's cached best, {peak / 1e9:.0f} GFLOP/s")
    return flops.peak_flops_per_second()


def robust_peak(peak: float, source: str, achieved: list[float]) -> tuple[float, str]:
    """The CPU peak raised to the highest FLOP/s any implementation achieved in the run.

    A peak measured while other jobs held the cores is too low; model FLOPs that really ran
    bound it from below, so MFU never exceeds 100 % (`flops.observe_cpu_flops`, which also
    raises the cached figure the trainer uses).
    """
    import jax

    from transformer_jax.train import flops

    best = max(achieved, default=0.0)
    if jax.devices()[0].platform != "cpu" or best <= peak:
        return peak, source
    return (flops.observe_cpu_flops(best, peak),
            f"{source}, raised to the {best / 1e9:.0f} GFLOP/s a side achieved (above it)")


def time_alternating(
    runs: dict[str, Callable[[], None]], *, reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of each callable, interleaved A, B, A, B, ... after `warmup` calls each.

    Each callable must do a fixed amount of work and wait for it to finish. Alternating
    spreads any background load over all implementations alike.
    """
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def command_line(module: str, argv: list[str]) -> str:
    """The command that reproduces a run (without output-file flags), for the report."""
    return " ".join(["python -m", module, *(a for a in argv if not a.startswith("--jsonl"))])


def emit(record: dict, jsonl: str | None = None) -> None:
    """Prints one measurement as a JSON line (and appends it to `jsonl`)."""
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if jsonl:
        with open(jsonl, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def environment() -> dict:
    """Device, library versions, thread counts and machine load, for the report."""
    import flax
    import jax

    env = {
        "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
        "num_devices": jax.device_count(),
        **{k: v for k, v in cpu_kind().items() if k != "slug"},
        "cpu_count": os.cpu_count(),
        "cores_used": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_1m": os.getloadavg()[0],
    }
    try:
        import torch
        import transformers

        env.update(torch=torch.__version__, transformers=transformers.__version__,
                   torch_threads=torch.get_num_threads())
    except ImportError:
        pass
    return env


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpuinfo_field(text: str, name: str) -> str:
    match = re.search(rf"^{name}\s*:\s*(.*)$", text, re.M)
    return match.group(1).strip() if match else ""


def _cpu_model() -> str:
    return _cpuinfo_field(_cpuinfo(), "model name") or platform.processor()


# AMD (family, model range) -> microarchitecture; "AMD EPYC" alone does not tell them apart.
_AMD_CORES = [(23, range(0x00, 0x30), "Zen/Zen+"), (23, range(0x30, 0x100), "Zen 2"),
              (25, range(0x00, 0x10), "Zen 3"), (25, range(0x10, 0x20), "Zen 4"),
              (25, range(0x20, 0x60), "Zen 3"), (25, range(0x60, 0x100), "Zen 4"),
              (26, range(0x00, 0x100), "Zen 5")]


def cpu_kind() -> dict:
    """The CPU kind a table was measured on: model, vendor family/model, core name, ISA.

    `isa` is the widest vector ISA the kernel reports (AVX-512 / AVX2 / SSE), `amx` whether
    AMX tiles exist; `slug` (e.g. `zen3_avx2`) names the BENCHMARKS.md sections of that kind,
    so tables from different CPUs are kept side by side rather than overwritten.
    """
    text = _cpuinfo()
    flags = set(_cpuinfo_field(text, "flags").split())
    vendor = _cpuinfo_field(text, "vendor_id")
    family, model = (int(_cpuinfo_field(text, f) or -1) for f in ("cpu family", "model"))
    isa = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
           else "SSE" if flags else platform.machine())
    core = next((name for fam, models, name in _AMD_CORES
                 if vendor == "AuthenticAMD" and fam == family and model in models),
                f"{vendor or platform.machine()} family {family} model {model}")
    amx = any(f.startswith("amx") for f in flags)
    slug = re.sub(r"[^a-z0-9]+", "" if core.startswith("Zen") else "_",
                  core.split("/")[0].lower())  # "zen3"; else e.g. "genuineintel_family_6_..."
    return {
        "cpu": _cpu_model(), "cpu_core": core, "cpu_family_model": f"{family}/{model}",
        "isa": isa + (" + AMX" if amx else ""),
        "isa_flags": " ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))),
        "slug": f"{slug}_{isa.lower().replace('-', '')}" + ("_amx" if amx else ""),
    }


def environment_markdown(env: dict) -> str:
    """The environment as one Markdown line."""
    keys = ["device", "cpu", "cpu_core", "cpu_family_model", "isa", "isa_flags", "cpu_count",
            "cores_used", "python", "jax", "flax", "torch",
            "transformers", "torch_threads", "xla_flags", "load_average_1m"]
    return "; ".join(f"{k} `{env[k]}`" for k in keys if k in env and env[k] != "")


def section_suffix(env: dict) -> str:
    """The CPU kind (`_zen3_avx2`) and, when `--cpus` pinned the process, `_1core` etc."""
    cores = "" if env["cores_used"] == env["cpu_count"] else f"_{env['cores_used']}core"
    return f"{cores}_{cpu_kind()['slug']}"


def cpu_heading(env: dict) -> str:
    """One line naming the CPU kind of a table, e.g. `Zen 3 (AVX2), AMD EPYC, 2 cores`."""
    return (f"CPU kind: **{env['cpu_core']} ({env['isa']})**, `{env['cpu']}`, "
            f"{env['cores_used']} of {env['cpu_count']} cores.")


def section(title: str, method: str, env: dict, body: str, notes: tuple[str, ...] = ()) -> str:
    """A BENCHMARKS.md section: title, method line, CPU kind, table, notes, environment."""
    parts = [title, method, cpu_heading(env), body, *notes,
             f"Environment: {environment_markdown(env)}."]
    return "\n\n".join(parts)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replaces (or appends) the block between `<!-- begin:name -->` and `<!-- end:name -->`."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    path.write_text(text, encoding="utf-8")


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(values)
