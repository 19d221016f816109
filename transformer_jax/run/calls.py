"""When things happen in the train loop, and how steps are grouped into jitted calls.

The loop runs `train.steps_per_call` optimizer steps per jitted call (`train_steps`, a
`lax.scan` of `train_step` over K stacked batches). `due` is the one rule for "is a
log/eval/checkpoint due after this call" (big_vision's `itstime`); `call_length` shortens a
call so that no eval or checkpoint step falls inside one; `stack`/`unstack` turn K batches
into one [K, B, ...] call and the call's [K] metrics back into K per-step records.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from transformer_jax.placement import Placement
from transformer_jax.tasks.base import Batch, BatchIterator


def due(step: int, every: int, *, span: int = 1, total: int | None = None) -> bool:
    """True if a multiple of `every` lies in (step - span, step], or step is the last.

    Args:
      step: optimizer steps done after this call.
      every: the interval (0 or None: never, except at `total`).
      span: steps the call ran.
      total: the run's last step (always due), or None.
    """
    if total is not None and step == total:
        return True
    return bool(every) and step // every > (step - span) // every


def call_length(step: int, tcfg: ml_collections.ConfigDict) -> int:
    """How many steps the next train call runs, from `step` (the steps done so far).

    `train.steps_per_call`, unless an evaluation, a checkpoint or the end falls before that
    many steps: then 1, so those happen exactly on their steps. Aligned intervals (the
    configs' defaults) compile one train executable; otherwise a second, one-step one.
    """
    end = step + tcfg.steps_per_call
    if end > tcfg.steps:
        return 1
    stops = (tcfg.eval_every, tcfg.checkpoint_every)
    if any(s % every == 0 for s in range(step + 1, end) for every in stops):
        return 1
    return tcfg.steps_per_call


def stack(batches: BatchIterator, count: int, placement: Placement) -> dict[str, jax.Array]:
    """The next `count` training batches as global [K, B, ...] arrays for one call."""
    local: list[Batch] = [next(batches) for _ in range(count)]
    return placement.to_global_steps(local)


def unstack(calls: list[dict[str, jax.Array]]) -> list[dict[str, float]]:
    """Calls' stacked metrics {name: [K]} -> one {name: value} per step, in order.

    Fetches them from the device: the train loop's only host sync.
    """
    return [{name: float(np.asarray(values)[i]) for name, values in call.items()}
            for call in jax.device_get(calls) for i in range(len(call["loss"]))]
