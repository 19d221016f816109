"""Writes metrics to WORKDIR/metrics.jsonl and TensorBoard event files (no TensorFlow).

One JSON object per line: `{"step": 10, "split": "train", "loss": 3.2, ...}`. Only process
0 writes. On resume, lines for steps after the restored checkpoint are dropped first, and the
TensorBoard writer purges those steps' events (`purge_step`), so both read as one
uninterrupted run. A figure that is not known (e.g. tokens/s before any timed step) is left
out of the record rather than written as NaN.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import numpy as np
from tensorboardX import SummaryWriter


class MetricWriter:
    """Appends metrics; a resumed run first forgets the steps it will redo."""

    def __init__(self, workdir: str | pathlib.Path, resume_from: int = 0):
        """Args: the run's workdir; the step the run resumes from (0: a fresh start)."""
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._active = jax.process_index() == 0
        self._tb = None
        if self._active:
            self.truncate_after(resume_from)
            # TensorBoard hides older events at steps >= purge_step: those the run redoes.
            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"),
                                     purge_step=resume_from + 1 if resume_from else None)

    def truncate_after(self, step: int) -> None:
        """Drops lines with `step` > the given step (a resumed run repeats those steps)."""
        if not self._active or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        """Writes one line and the matching TensorBoard scalars `split/name`.

        Non-finite values are written as null in the line (a diverged loss is worth seeing)
        but not to TensorBoard, which cannot plot them.
        """
        if not self._active:
            return
        record = {"step": int(step), "split": split}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in metrics.items():
            if math.isfinite(float(value)):
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))

    def write_images(self, step: int, split: str, images: dict[str, np.ndarray]) -> None:
        """TensorBoard images `split/name` (uint8 [H, W, 3] each), e.g. a confusion matrix."""
        for name, image in images.items() if self._active else ():
            self._tb.add_image(f"{split}/{name}", image, int(step), dataformats="HWC")

    def write_text(self, step: int, tag: str, text: str) -> None:
        """A TensorBoard text summary (a sample, decoded examples), shown as written."""
        if self._active:
            # TensorBoard renders text as Markdown: a code block keeps lines and indentation.
            self._tb.add_text(tag, "```\n" + text + "\n```", int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _jsonable(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
