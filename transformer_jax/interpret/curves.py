"""PNG training curves from a run's metrics.jsonl (`train/metric_writer.py` rows).

Left panel: train and eval loss against the step. Right panel: the eval metrics other than
the loss (bits/byte, accuracy, BLEU, ...), when the run has any.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt

from transformer_jax.errors import UserError

SIZE_INCHES = (10.0, 4.0)
DPI = 100
# Eval keys that are counts, bookkeeping or exp(loss) (whose scale would flatten the rest).
_NOT_PLOTTED = {"step", "split", "loss", "perplexity", "tokens", "examples", "decoded", "weight",
                "eval_batches", "eval_complete"}


def read_metrics(path: pathlib.Path) -> list[dict]:
    """The rows of a metrics.jsonl (UserError if missing or empty)."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: train a run in that workdir first")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise UserError(f"{path} is empty: the run has logged nothing yet")
    return rows


def series(rows: list[dict], split: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in the rows of `split`, skipping rows without a value."""
    pairs = [(r["step"], r[key]) for r in rows if r["split"] == split and r.get(key) is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def eval_metric_keys(rows: list[dict]) -> list[str]:
    """The eval metrics plotted on the right panel (not counts or bookkeeping), sorted."""
    return sorted({k for r in rows if r["split"] == "eval" for k, v in r.items()
                   if k not in _NOT_PLOTTED and isinstance(v, (int, float))})


def write_curves(workdir: str | pathlib.Path, out: str | pathlib.Path | None = None
                 ) -> pathlib.Path:
    """Writes the curves of `workdir`'s metrics.jsonl to `out` (default WORKDIR/curves.png).

    Returns:
      The PNG's path ((SIZE_INCHES * DPI) pixels).
    """
    rows = read_metrics(pathlib.Path(workdir) / "metrics.jsonl")
    out = pathlib.Path(out) if out else pathlib.Path(workdir) / "curves.png"
    eval_keys = eval_metric_keys(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE_INCHES, dpi=DPI)
    for split, style in (("train", "-"), ("eval", "o-")):
        steps, values = series(rows, split, "loss")
        if steps:
            left.plot(steps, values, style, label=f"{split} loss", markersize=3)
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    left.grid(alpha=0.3)
    for key in eval_keys:
        steps, values = series(rows, "eval", key)
        right.plot(steps, values, "o-", label=key, markersize=3)
    if eval_keys:
        right.set_xlabel("step")
        right.set_title("eval")
        right.legend()
        right.grid(alpha=0.3)
    else:
        right.axis("off")
    fig.suptitle(str(pathlib.Path(workdir).name))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
