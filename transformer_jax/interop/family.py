"""The contract between the Hugging Face converter core and one architecture module.

Each supported Hugging Face architecture (GPT-2, Llama-style, BERT/RoBERTa, T5, BART, Marian)
has one module in this package that implements `HFFamily` and nothing else: it knows the
names and layouts of that architecture's tensors and how its `config.json` maps onto a
`ModelConfig`. Everything generic lives in the core: reading `config.json`, (sharded)
safetensors and `pytorch_model.bin`, placing each tensor straight into its target sharding,
scanned <-> unrolled stacking, writing run directories and Hugging Face directories, the
tokenizer files.

Parameter paths are always given in the UNROLLED layout (`scan_layers=False`: stack layers
named `layers_0 .. layers_{L-1}`); the core stacks them when the target is scanned and
unstacks scanned params before `export_params`.

Shapes of the yielded arrays are exactly the project's parameter shapes (e.g. attention
kernels [D, N, H]); dtype float32 (the core casts to `param_dtype`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig

# A Hugging Face tensor name -> its full value as a float32 numpy array.
ReadTensor = Callable[[str], np.ndarray]
# A path in the project's params tree, e.g. ("decoder", "layers_3", "attention", "query", "kernel").
ParamPath = tuple[str, ...]


class UnsupportedConfig(UserError):  # noqa: N818  (reads as "unsupported config")
    """A Hugging Face config field (or value) this project cannot express exactly.

    The message is one line naming the field, its value and why it is refused; the converter
    never turns such a checkpoint into a silently different model.
    """


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a Hugging Face checkpoint becomes in this project.

    Attributes:
      model: the exact `ModelConfig` (always built with `scan_layers=False`; the core
        replaces it when the target is scanned).
      task: the project's task name whose model holds these weights ("lm",
        "bert_pretrain", "classify", "tagging", "qa", "seq2seq").
      num_labels: output classes of a classification/tagging head, else None.
      hf_class: the `transformers` class the checkpoint was saved from (its
        `config.json` "architectures"[0]), and the one an export writes.
    """

    model: ModelConfig
    task: str
    num_labels: int | None = None
    hf_class: str = ""


class HFFamily(Protocol):
    """One Hugging Face architecture family (see the module docstring)."""

    model_types: tuple[str, ...]
    """The `config.json` "model_type" values this module converts (e.g. ("bert", "roberta"))."""

    def architecture(self, hf_config: dict) -> Architecture:
        """The project's model and task for `hf_config` (a parsed config.json).

        Raises:
          UnsupportedConfig: a field the project cannot express, named in the message.
        """

    def import_params(
        self, hf_config: dict, arch: Architecture, read: ReadTensor
    ) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
        """Every leaf of the project's (unrolled) params, each with a thunk that builds it.

        The core calls one thunk at a time and places its result into the target sharding
        before calling the next, so at most one converted tensor is alive on the host.
        """

    def export(
        self, arch: Architecture, params: dict
    ) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
        """The Hugging Face config.json dict and its (name, float32 array) tensors.

        Args:
          arch: what the project's run holds (model config, task, labels, HF class).
          params: the unrolled params as host numpy arrays.
        """
