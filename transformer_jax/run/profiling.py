"""`jax.profiler` traces into WORKDIR/profile, viewable in TensorBoard's profile plugin / XProf.

`train.profile_steps="START,END"` traces the jitted train calls that run steps START..END
(whole calls: a call runs `train.steps_per_call` steps), each call annotated with
`StepTraceAnnotation("train", step_num=<its first step>)` so the trace viewer shows steps.
`experiments.generate --profile` traces one decode. A bucket workdir's trace is written to a
local folder first and copied up (the profiler writes local files only).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import jax
from etils import epath

from transformer_jax import workpath
from transformer_jax.errors import UserError

PROFILE_DIR = "profile"


def parse_steps(spec: str) -> tuple[int, int] | None:
    """`train.profile_steps` ("" = off, or "START,END" with 1 <= START <= END) -> the range.

    Raises:
      UserError: anything else.
    """
    if not spec:
        return None
    parts = str(spec).split(",")
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        start = end = 0
    if len(parts) != 2 or not 1 <= start <= end:
        raise UserError(f"train.profile_steps={spec!r}: use START,END (1 <= START <= END, "
                        "e.g. 10,20) or '' for no trace")
    return start, end


@contextlib.contextmanager
def trace(workdir: epath.Path) -> Iterator[None]:
    """Records a `jax.profiler` trace of the block into `workdir`/profile."""
    target = workdir / PROFILE_DIR
    local = tempfile.mkdtemp(prefix="profile-") if workpath.is_url(workdir) else str(target)
    jax.profiler.start_trace(local)
    try:
        yield
    finally:
        jax.profiler.stop_trace()
        if local != str(target):
            for root, _, files in os.walk(local):
                for name in files:
                    path = os.path.join(root, name)
                    with open(path, "rb") as f:
                        out = target / os.path.relpath(path, local)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(f.read())
            shutil.rmtree(local, ignore_errors=True)


class StepProfiler:
    """Starts a trace before the call that runs step START, stops it after the one that runs
    step END; annotates every train call in between."""

    def __init__(self, spec: str, workdir: epath.Path):
        self._range, self._workdir = parse_steps(spec), workdir
        self._active: contextlib.ExitStack | None = None

    def call(self, step: int, count: int) -> contextlib.AbstractContextManager:
        """Context for the train call running steps step+1..step+count (annotated if traced)."""
        if self._range is None:
            return contextlib.nullcontext()
        start, end = self._range
        if self._active is None and step < end and step + count >= start:
            self._active = contextlib.ExitStack()
            self._active.enter_context(trace(self._workdir))
        if self._active is None:
            return contextlib.nullcontext()
        return jax.profiler.StepTraceAnnotation("train", step_num=step + 1)

    def after_call(self, step: int, state) -> None:
        """Stops the trace once step END has run (waits for the call to finish first)."""
        if self._active is not None and step >= self._range[1]:
            jax.block_until_ready(state)
            self.close()

    def close(self) -> None:
        if self._active is not None:
            self._active, active = None, self._active
            active.close()
