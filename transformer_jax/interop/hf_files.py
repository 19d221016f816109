"""Reading a local Hugging Face model directory: config.json and its weight files.

Weights come from `model.safetensors`, a sharded `model.safetensors.index.json`, or
`pytorch_model.bin` (only when torch is installed). Every tensor is read on demand, one at a
time, through the `safetensors` library (`safe_open`), and returned as float32 numpy
(bf16/fp16/fp32 on disk).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import numpy as np
from safetensors import safe_open

from transformer_jax.errors import UserError

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"


def read_json(path: pathlib.Path) -> dict:
    """A JSON object from `path` (UserError naming the file if missing or malformed)."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: a Hugging Face model directory needs it")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


class HFCheckpoint:
    """A Hugging Face model directory opened for reading (nothing is loaded up front).

    Attributes:
      directory: the directory.
      config: its parsed config.json.
    """

    def __init__(self, directory: str | pathlib.Path):
        self.directory = pathlib.Path(directory).expanduser()
        if not self.directory.is_dir():
            raise UserError(f"--from_hf={directory}: not a directory; give a local Hugging "
                            "Face model directory (config.json + model.safetensors)")
        self.config = read_json(self.directory / CONFIG)
        self._torch_state: dict | None = None  # pytorch_model.bin's tensors, once loaded
        self._files = self._weight_files()  # tensor name -> file

    def _weight_files(self) -> dict[str, pathlib.Path]:
        d = self.directory
        if (d / SAFETENSORS_INDEX).is_file():
            index = read_json(d / SAFETENSORS_INDEX).get("weight_map")
            if not isinstance(index, dict) or not index:
                raise UserError(f"{d / SAFETENSORS_INDEX} has no 'weight_map'")
            missing = sorted({f for f in index.values() if not (d / f).is_file()})
            if missing:
                raise UserError(f"{d / SAFETENSORS_INDEX} lists {missing[0]}, which is missing")
            return {name: d / f for name, f in index.items()}
        if (d / SAFETENSORS).is_file():
            try:
                with safe_open(d / SAFETENSORS, "np") as f:
                    return {name: d / SAFETENSORS for name in f.keys()}
            except Exception as e:  # safetensors raises its own error types
                raise UserError(f"{d / SAFETENSORS} is not a readable safetensors file "
                                f"({e})") from e
        if (d / TORCH_BIN).is_file():
            try:
                import torch
            except ImportError as e:
                raise UserError(f"{d / TORCH_BIN} needs torch to read: pip install torch, or "
                                "convert it to model.safetensors") from e
            self._torch_state = torch.load(d / TORCH_BIN, map_location="cpu",
                                           weights_only=True)
            return {name: d / TORCH_BIN for name in self._torch_state}
        raise UserError(f"{d} has no {SAFETENSORS}, {SAFETENSORS_INDEX} or {TORCH_BIN}")

    def names(self) -> list[str]:
        """Every tensor name in the checkpoint, sorted."""
        return sorted(self._files)

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def read(self, name: str) -> np.ndarray:
        """The full tensor `name` as float32 numpy (UserError naming it when absent)."""
        if name not in self._files:
            raise UserError(f"{self.directory} has no tensor {name!r}: the checkpoint does "
                            "not match its config.json")
        if self._torch_state is not None:
            return self._torch_state[name].float().numpy()
        path = self._files[name]
        with safe_open(path, "np") as f:
            if f.get_slice(name).get_dtype() != "BF16":
                return np.asarray(f.get_tensor(name), np.float32)
        # numpy has no bfloat16: read it through the JAX framework, then widen.
        with safe_open(path, "flax") as f:
            return np.asarray(f.get_tensor(name).astype(np.float32))

    def tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, float32 array) for every tensor, one at a time."""
        for name in self.names():
            yield name, self.read(name)
