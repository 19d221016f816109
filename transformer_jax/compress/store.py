"""A quantized run directory: int8 weights + scales, the source run's metadata, its tokenizer.

  OUT/quantized.json   {"scheme", "groups", "step", "source", "metadata"} (metadata: the
                       source checkpoint's, so the task, model and data are known exactly)
  OUT/weights/         the `int8.quantize`d params (Orbax), no optimizer state
  OUT/tokenizer.model  the source run's tokenizer

`run/workdir.py:load_run` reads such a directory like a training run (dequantizing the
weights), so `experiments.evaluate`, `predict` and `generate` take it as --workdir.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from transformer_jax.errors import UserError

MARKER = "quantized.json"
WEIGHTS = "weights"
TOKENIZER_FILE = "tokenizer.model"


def is_quantized_dir(directory: str | pathlib.Path) -> bool:
    """Whether `directory` was written by `write`."""
    return (pathlib.Path(directory) / MARKER).is_file()


def write(out: str | pathlib.Path, qparams: Any, *, scheme: str, groups: tuple[str, ...],
          step: int, source: str | pathlib.Path, metadata: dict) -> None:
    """Writes a quantized run directory at `out` (which must not exist yet)."""
    out = pathlib.Path(out).absolute()
    if out.exists():
        raise UserError(f"--out={out} exists: choose a new directory")
    tokenizer = pathlib.Path(source) / TOKENIZER_FILE
    if not tokenizer.is_file():
        raise UserError(f"{tokenizer} does not exist: the source run has no tokenizer file")
    out.mkdir(parents=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(out / WEIGHTS, jax.device_get(qparams))
    shutil.copyfile(tokenizer, out / TOKENIZER_FILE)
    (out / MARKER).write_text(json.dumps({
        "scheme": scheme, "groups": list(groups), "step": int(step),
        "source": str(pathlib.Path(source).absolute()), "metadata": metadata}, indent=1))


def read_marker(directory: str | pathlib.Path) -> dict:
    """The quantized.json of a directory written by `write`."""
    return json.loads((pathlib.Path(directory) / MARKER).read_text())


def read_weights(directory: str | pathlib.Path) -> Any:
    """The quantized params tree (host arrays)."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(pathlib.Path(directory).absolute() / WEIGHTS)
