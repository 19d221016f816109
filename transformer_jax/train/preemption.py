"""Preemption: notice SIGTERM / SIGINT, agree on a step with every host, checkpoint, exit.

One process: a Python signal handler sets a flag that the loop checks after each train call
and, once that call has finished, before the next one: the run saves at most
`train.steps_per_call` steps after the signal.
Several processes (after `jax.distributed.initialize`): JAX's preemption service catches
SIGTERM on any host and `multihost_utils.reached_preemption_sync_point(step)` turns true on
all hosts at the same step, so they all save the same checkpoint; a Python SIGTERM handler
would replace the service's own, so none is installed there.
"""

from __future__ import annotations

import signal
import types

import jax
from absl import logging
from jax.experimental import multihost_utils

from transformer_jax import compat


class PreemptionWatcher:
    """Context manager: `watcher.reached(step)` is True once the run should save and stop."""

    def __init__(self) -> None:
        self._signal: int | None = None
        self._previous: dict[int, object] = {}
        self._multihost = jax.process_count() > 1 and compat.has_preemption_service()

    def __enter__(self) -> PreemptionWatcher:
        signals = [signal.SIGINT] if self._multihost else [signal.SIGTERM, signal.SIGINT]
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        del frame
        if self._signal is not None:  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        self._signal = signum
        logging.warning("received %s: finishing this step, then checkpointing",
                        signal.Signals(signum).name)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self._signal).name if self._signal else "SIGTERM"

    def signalled(self, pending=None) -> bool:
        """One process: True once a signal arrived. Waits for `pending` (the arrays the last
        train call computes) first, so a signal during that call is seen before the next call
        starts: the run stops at most `train.steps_per_call` steps after the signal.
        Several processes: False (they stop at the sync point `reached` agrees on)."""
        if self._multihost:
            return False
        jax.block_until_ready(pending)
        return self._signal is not None

    def reached(self, step: int) -> bool:
        """True when every host should checkpoint at `step` and exit (call every step)."""
        if self._multihost and multihost_utils.reached_preemption_sync_point(step):
            return True
        return self._signal is not None
