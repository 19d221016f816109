"""Writes metrics to WORKDIR/metrics.jsonl and TensorBoard event files (no TensorFlow).

One JSON object per line: `{"step": 10, "split": "train", "loss": 3.2, ...}`. Only process
0 writes. On resume, lines for steps after the restored checkpoint are dropped first, and the
TensorBoard writer purges those steps' events (`purge_step`), so both read as one
uninterrupted run. A figure that is not known (e.g. tokens/s before any timed step) is left
out of the record rather than written as NaN.

A bucket workdir (gs://...) cannot be appended to: there the lines are kept in memory and the
file is rewritten, and the TensorBoard events are written to a local folder and copied to
WORKDIR/tensorboard; both at most every `SYNC_EVERY_S` seconds and at `close`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time

import jax
import numpy as np
from absl import logging
from etils import epath, epy

with epy.lazy_imports():  # imports torch when installed (seconds): only when writing
    import tensorboardX

from transformer_jax import workpath

# A bucket workdir's metrics and events are uploaded at most this often (and at close).
SYNC_EVERY_S = 30.0


class MetricWriter:
    """Appends metrics; a resumed run first forgets the steps it will redo."""

    def __init__(self, workdir: str | os.PathLike, resume_from: int = 0):
        """Args: the run's workdir; the step the run resumes from (0: a fresh start)."""
        workdir = epath.Path(workdir)
        self.path = workdir / "metrics.jsonl"
        self._active = jax.process_index() == 0
        self._remote = workpath.is_url(workdir)
        self._tb = None
        self._lines: list[str] = []  # a bucket workdir's metrics.jsonl, rewritten on sync
        self._tb_remote, self._tb_local, self._synced = workdir / "tensorboard", None, 0.0
        if self._active:
            self.truncate_after(resume_from)
            if self._remote:
                self._tb_local = tempfile.mkdtemp(prefix="tensorboard-")
            # TensorBoard hides older events at steps >= purge_step: those the run redoes.
            self._tb = tensorboardX.SummaryWriter(
                self._tb_local or str(self._tb_remote),
                purge_step=resume_from + 1 if resume_from else None)

    def truncate_after(self, step: int) -> None:
        """Drops lines with `step` > the given step (a resumed run repeats those steps)."""
        if not self._active or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))
        if self._remote:
            self._lines = kept

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        """Writes one line and the matching TensorBoard scalars `split/name`.

        Non-finite values are written as null in the line (a diverged loss is worth seeing)
        but not to TensorBoard, which cannot plot them.
        """
        if not self._active:
            return
        record = {"step": int(step), "split": split}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        if self._remote:
            self._lines.append(json.dumps(record))
        else:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        for name, value in metrics.items():
            if math.isfinite(float(value)):
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))
        if self._remote and time.monotonic() - self._synced >= SYNC_EVERY_S:
            self.sync()

    def sync(self) -> None:
        """Uploads a bucket workdir's metrics.jsonl and event files (whole objects); nothing
        for a local workdir, whose files are written as they go."""
        if self._remote and self._tb is not None:
            self._tb.flush()
            self._upload()

    def _upload(self) -> None:
        self.path.write_text("".join(line + "\n" for line in self._lines))
        for name in os.listdir(self._tb_local):
            with open(os.path.join(self._tb_local, name), "rb") as f:
                (self._tb_remote / name).write_bytes(f.read())
        self._synced = time.monotonic()

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
        """Closes the event file (uploads a bucket workdir's files). A full disk is one
        warning here: the run's own error (e.g. the checkpoint's) is the one to report."""
        if self._tb is not None:
            try:
                self._tb.close()
            except OSError as e:
                logging.warning("could not finish the TensorBoard events in %s (%s)",
                                self._tb_remote, e)
            if self._remote:
                self._upload()
                shutil.rmtree(self._tb_local, ignore_errors=True)
            self._tb = None


def _jsonable(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
