"""Training metrics between host syncs: queued per call, written per step, policed.

`TrainMetrics` holds the device metrics of the calls since the last flush, writes one record
per step (metrics.jsonl, TensorBoard) with the throughput over those steps, and owns the
non-finite policy (`train.on_nonfinite`: "stop" raises, "skip" counts the skipped updates).
"""

from __future__ import annotations

import time

import jax

from transformer_jax.errors import UserError
from transformer_jax.run import calls
from transformer_jax.train import flops
from transformer_jax.train.metric_writer import MetricWriter


class Throughput:
    """Real (non-padding) tokens/s and MFU over the steps since the last `restart`."""

    def __init__(self, flops_per_token: float):
        """Args: the task's training FLOPs per token (`Task.flops_per_token`)."""
        self.flops_per_token = flops_per_token
        self.peak, _ = flops.peak_flops_per_second()
        self.on_cpu = jax.devices()[0].platform == "cpu"
        self.restart(0)

    def restart(self, step: int) -> None:
        """Starts a new measurement at `step` (e.g. after compilation or an evaluation)."""
        self.time, self.step = time.perf_counter(), step

    def measure(self, step: int, tokens: dict[int, float]) -> dict[str, float]:
        """{"tokens_per_s", "mfu"} since the last restart, then restarts.

        Args:
          step: the step just reached.
          tokens: real tokens of each step (the train step's `tokens` metric) by step
            number; steps at or before the last restart are not in the measurement.

        Returns:
          Empty when no step has passed since the restart: a figure not yet known is not
          written at all (rather than as NaN).
        """
        if step <= self.step:
            return {}
        elapsed = time.perf_counter() - self.time
        tokens_per_s = sum(n for s, n in tokens.items() if self.step < s <= step) / elapsed
        self.restart(step)
        achieved = tokens_per_s * self.flops_per_token
        if self.on_cpu:  # a peak measured on a busy machine is raised to what ran: MFU <= 1
            self.peak = flops.observe_cpu_flops(achieved, self.peak)
        mfu = achieved / self.peak
        return {"tokens_per_s": tokens_per_s, "mfu": mfu}


class TrainMetrics:
    """Queued train metrics, flushed at log points; the non-finite policy.

    Attributes:
      skipped: steps whose update was skipped as non-finite (policy "skip").
      last: the most recent step's record after a flush (for the progress bar).
    """

    def __init__(self, writer: MetricWriter, throughput: Throughput, on_nonfinite: str):
        self.writer, self.throughput, self.on_nonfinite = writer, throughput, on_nonfinite
        self.skipped = 0
        self.last: dict[str, float] = {}
        self._pending: list[dict[str, jax.Array]] = []

    @property
    def pending(self) -> bool:
        """True if some calls' metrics are not written yet."""
        return bool(self._pending)

    def add(self, call_metrics: dict[str, jax.Array]) -> None:
        """Queues one call's stacked [K] metrics (no host sync)."""
        self._pending.append(call_metrics)

    def flush(self, step: int, checkpoint_step: int | None) -> None:
        """Writes every queued step's record, ending at `step`.

        Raises:
          UserError: a step was non-finite and the policy is "stop" (its update was not
            applied; `checkpoint_step` is the newest checkpoint, named in the message).
        """
        records = calls.unstack(self._pending)
        self._pending = []
        first = step - len(records) + 1
        speed = self.throughput.measure(
            step, {first + i: float(r["tokens"]) for i, r in enumerate(records)})
        for offset, record in enumerate(records):
            s = first + offset
            self.writer.write(s, "train", {**record, **speed})
            if record["nonfinite"]:
                self.skipped += 1
                if self.on_nonfinite == "stop":
                    raise UserError(
                        f"non-finite loss or gradients at step {s} (update not applied); "
                        f"stopped as train.on_nonfinite='stop'. The newest checkpoint is "
                        f"step {checkpoint_step}. Lower optim.learning_rate, or set "
                        "--config.train.on_nonfinite=skip to skip such steps"
                    )
        self.last = {**records[-1], **speed}

    def postfix(self) -> dict[str, str]:
        """The progress bar's loss / tokens/s / MFU (/ skipped) of the last flush."""
        m, shown = self.last, {}
        shown["loss"] = f"{m['loss']:.3f}"
        if "mfu" in m:  # not yet measured right after compilation or an evaluation
            shown.update(tok_s=f"{m['tokens_per_s']:,.0f}", mfu=f"{m['mfu']:.1%}")
        if self.skipped:
            shown["skipped"] = str(self.skipped)
        return shown
