"""The one evaluation loop: a task's eval sums over a split, then its metrics.

    sums = Σ_batches task.eval_sums(model, params, batch)   (jitted once, replicated output)
    metrics = task.eval_metrics(sums) | task.decoded_metrics(...)

Sums are added up on the host in float64, so the figures do not depend on the batch count.
Every process runs the same calls on its rows of each global batch and gets the same numbers.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.placement import Placement
from transformer_jax.tasks.base import Task


class Evaluator:
    """Evaluates a task's params on a split; the eval step compiles once per batch shape."""

    def __init__(self, task: Task, placement: Placement, tokenizer: TextTokenizer):
        """Args: the task, where its eval batches go, and the run's tokenizer."""
        self.task, self.placement, self.tokenizer = task, placement, tokenizer
        model = task.build_model(task.model_config.replace(deterministic=True))
        self._eval_sums = jax.jit(functools.partial(task.eval_sums, model),
                                  out_shardings=placement.replicated)

    def sums(self, params: Any, split: str, max_batches: int | None
             ) -> tuple[dict[str, np.ndarray], int, bool]:
        """The task's eval sums over (at most `max_batches` batches of) `split`, float64.

        Returns (sums, batches evaluated, whether they were the whole split). One batch past
        `max_batches` is requested (not evaluated) to tell a subset from the whole split.
        """
        p = self.placement
        batches = self.task.eval_batches(
            self.tokenizer, split, batch_size=p.local_batch, process_index=p.process_index,
            process_count=p.process_count,
            max_batches=None if max_batches is None else max_batches + 1,
        )
        totals: dict[str, np.ndarray] = {}
        count, complete = 0, True
        try:
            for batch in batches:
                if count == max_batches:
                    complete = False
                    break
                sums = jax.device_get(self._eval_sums(params, p.to_global(batch)))
                for key, value in sums.items():
                    totals[key] = totals.get(key, 0.0) + np.asarray(value, np.float64)
                count += 1
        finally:
            if hasattr(batches, "close"):
                batches.close()
        return totals, count, complete

    def __call__(self, params: Any, split: str = "validation",
                 max_batches: int | None = None) -> dict[str, float]:
        """The task's metrics on `split` (all of it when `max_batches` is None), with
        `eval_batches` (global batches evaluated) and `eval_complete` (1: the whole split,
        0: its first `eval_batches` batches)."""
        return self.run(params, split, max_batches)[0]

    def run(self, params: Any, split: str, max_batches: int | None, images: bool = False
            ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """(metrics as `__call__`, the task's `eval_images` when `images`, else {}).

        With `images`, what they show (e.g. the confusion matrix's cells) is left out of
        the metrics: TensorBoard gets one image, not a scalar per cell.
        """
        sums, count, complete = self.sums(params, split, max_batches)
        metrics = self.task.eval_metrics(sums, complete=max_batches is None and not images)
        metrics.update(self.task.decoded_metrics(self.placement, params, self.tokenizer, split,
                                                 max_batches))
        metrics.update(eval_batches=float(count), eval_complete=float(complete))
        return metrics, self.task.eval_images(sums) if images else {}


def coverage(metrics: dict[str, float], global_batch: int) -> str:
    """"all 3 batches" or "the first 8 batches of 64 rows (a subset)": what an evaluation
    covered, from `Evaluator`'s `eval_batches` and `eval_complete`."""
    n = int(metrics["eval_batches"])
    if metrics["eval_complete"]:
        return f"all {n:,} batch{'es' * (n != 1)}"
    return f"the first {n:,} batch{'es' * (n != 1)} of {global_batch:,} rows (a subset)"


def headline(task: Task, metrics: dict[str, float]) -> str:
    """"loss 1.2345, perplexity 3.4400, ..." for the task's headline metrics."""
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in task.headline_metrics if k in metrics)
