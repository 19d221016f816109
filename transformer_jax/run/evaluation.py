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

    def sums(self, params: Any, split: str, max_batches: int | None) -> dict[str, np.ndarray]:
        """The task's eval sums over (at most `max_batches` batches of) `split`, float64."""
        p = self.placement
        batches = self.task.eval_batches(
            self.tokenizer, split, batch_size=p.local_batch, process_index=p.process_index,
            process_count=p.process_count, max_batches=max_batches,
        )
        totals: dict[str, np.ndarray] = {}
        try:
            for batch in batches:
                sums = jax.device_get(self._eval_sums(params, p.to_global(batch)))
                for key, value in sums.items():
                    totals[key] = totals.get(key, 0.0) + np.asarray(value, np.float64)
        finally:
            if hasattr(batches, "close"):
                batches.close()
        return totals

    def __call__(self, params: Any, split: str = "validation",
                 max_batches: int | None = None) -> dict[str, float]:
        """The task's metrics on `split` (all of it when `max_batches` is None)."""
        metrics = self.task.eval_metrics(self.sums(params, split, max_batches),
                                         complete=max_batches is None)
        metrics.update(self.task.decoded_metrics(self.placement, params, self.tokenizer, split,
                                                 max_batches))
        return metrics


def headline(task: Task, metrics: dict[str, float]) -> str:
    """"loss 1.2345, perplexity 3.4400, ..." for the task's headline metrics."""
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in task.headline_metrics if k in metrics)
