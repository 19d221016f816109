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
    """Tokens/s and MFU over the steps since the last `restart`."""

    def __init__(self, tokens_per_step: int, flops_per_token: float):
        """Args: token positions per optimizer step (global), training FLOPs per token."""
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak, _ = flops.peak_flops_per_second()
        self.restart(0)

    def restart(self, step: int) -> None:
        """Starts a new measurement at `step` (e.g. after compilation or an evaluation)."""
        self.time, self.step = time.perf_counter(), step

    def measure(self, step: int) -> tuple[float, float]:
        """(tokens/s, MFU) since the last restart (NaN when no step has passed); restarts."""
        if step <= self.step:
            return float("nan"), float("nan")
        elapsed = time.perf_counter() - self.time
        tokens_per_s = self.tokens_per_step * (step - self.step) / elapsed
        self.restart(step)
        return tokens_per_s, tokens_per_s * self.flops_per_token / self.peak


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
        tokens_per_s, mfu = self.throughput.measure(step)
        for offset, record in enumerate(records):
            s = step - len(records) + 1 + offset
            self.writer.write(s, "train", {**record, "tokens_per_s": tokens_per_s, "mfu": mfu})
            if record["nonfinite"]:
                self.skipped += 1
                if self.on_nonfinite == "stop":
                    raise UserError(
                        f"non-finite loss or gradients at step {s} (update not applied); "
                        f"stopped as train.on_nonfinite='stop'. The newest checkpoint is "
                        f"step {checkpoint_step}. Lower optim.learning_rate, or set "
                        "--config.train.on_nonfinite=skip to skip such steps"
                    )
        self.last = {**records[-1], "tokens_per_s": tokens_per_s, "mfu": mfu}

    def postfix(self) -> dict[str, str]:
        """The progress bar's loss / tokens/s / MFU (/ skipped) of the last flush."""
        m = self.last
        return dict(loss=f"{m['loss']:.3f}", tok_s=f"{m['tokens_per_s']:,.0f}",
                    mfu=f"{m['mfu']:.1%}", **({"skipped": self.skipped} if self.skipped else {}))
