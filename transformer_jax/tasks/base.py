"""The contract between the one trainer (train/loop.py) and a family/task.

A task says which model to build, what the batches are, what the loss is and how to
evaluate; the trainer owns everything else (mesh, sharded state, jitted `train_step`,
checkpoints with exact resume, preemption, metrics files). To add a task: subclass `Task`,
register it in `tasks/__init__.py`, and give it a config in `experiments/configs/`.

Batches are dicts of numpy arrays whose leading axis is the batch; the trainer turns each
process's rows into global arrays sharded over the mesh's batch axes.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from transformer_jax import sharding
from transformer_jax.data.sources import TextSource
from transformer_jax.data.tokenizer import Tokenizer
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig

Batch = dict[str, np.ndarray]
# (params, batch, dropout_rng) -> (loss_sum, weight_sum); the trainer divides the sums.
LossFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[jax.Array, jax.Array]]


class BatchIterator(Protocol):
    """Training batches with resumable state (see data/batching.py and data/pipeline.py).

    `get_state()` must be JSON-serializable and the same on every process; `set_state`
    must continue exactly where that state was taken, for any process count.
    """

    def __next__(self) -> Batch: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class EvalContext:
    """What a task's `evaluate`/`demo`/`predict` get from the trainer.

    Attributes:
      config: the experiment config.
      model_config: the resolved model config (train-time; use `.replace(deterministic=True)`).
      tokenizer: the run's tokenizer.
      mesh: the device mesh (already set with `jax.set_mesh`).
      batch_sharding: NamedSharding of a global batch's leading axis.
      local_batch: rows per batch on this process.
      process_index, process_count: this process and the number of processes.
    """

    config: ml_collections.ConfigDict
    model_config: ModelConfig
    tokenizer: Tokenizer
    mesh: jax.sharding.Mesh
    batch_sharding: jax.sharding.NamedSharding
    local_batch: int
    process_index: int = 0
    process_count: int = 1

    def to_global(self, local: Batch) -> dict[str, jax.Array]:
        """Assembles each process's rows into global arrays sharded over the batch axes."""
        return {
            k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
            for k, v in local.items()
        }

    def to_global_steps(self, local: list[Batch]) -> dict[str, jax.Array]:
        """K local batches as global [K, B, ...] arrays (`sharding.steps_sharding`)."""
        stacked = sharding.steps_sharding(self.mesh)
        return {
            k: jax.make_array_from_process_local_data(
                stacked, np.stack([np.asarray(b[k]) for b in local]))
            for k in local[0]
        }

    def gather(self, x: jax.Array) -> np.ndarray:
        """A global array as numpy on every process (for host-side metrics)."""
        return np.asarray(jax.jit(lambda a: a, out_shardings=jax.sharding.NamedSharding(
            self.mesh, jax.sharding.PartitionSpec()))(x))


class Task(abc.ABC):
    """A family + task: model, data, loss and evaluation for the one trainer.

    Attributes:
      name: the `config.task.name` that selects it.
      special_tokens: user-defined symbols the SentencePiece vocabulary must contain (e.g.
        "[CLS]", "[SEP]", "[MASK]"); look them up with `tokenizer.piece_id`.
      headline_metrics: eval metric names printed after each evaluation.
    """

    name: ClassVar[str]
    special_tokens: ClassVar[tuple[str, ...]] = ()
    headline_metrics: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(self, config: ml_collections.ConfigDict, model_config: ModelConfig):
        """Keeps the configs; raise UserError here for a bad task config (before any write)."""
        self.config = config
        self.model_config = model_config

    def tokenizer_source(self) -> TextSource:
        """Train-split documents the tokenizer is trained on when none is cached."""
        from transformer_jax.data import sources

        return sources.make_source(self.config.data, "train")

    @abc.abstractmethod
    def build_model(self, model_config: ModelConfig) -> nn.Module:
        """The model to train (`model_config.deterministic` selects the eval variant)."""

    @abc.abstractmethod
    def init_batch(self) -> Batch:
        """A one-row batch with the training batch's keys, shapes and dtypes (for init)."""

    @abc.abstractmethod
    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the model's `__call__` for a batch (used by init and losses)."""

    def init_params(self, model: nn.Module, rng: jax.Array) -> Any:
        """Fresh parameters (the trainer calls this under jit with output shardings)."""
        inputs = self.model_inputs({k: np.asarray(v) for k, v in self.init_batch().items()})
        return model.init({"params": rng, "dropout": rng}, **inputs)["params"]

    @abc.abstractmethod
    def loss_fn(self, model: nn.Module) -> LossFn:
        """(params, batch, rng) -> (loss_sum, weight_sum) for `train/step.py:train_step`."""

    @abc.abstractmethod
    def train_batches(self, tokenizer: Tokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        """This process's rows of each training batch, forever, with resumable state."""

    @abc.abstractmethod
    def evaluate(self, ctx: EvalContext, params: Any, split: str = "validation"
                 ) -> dict[str, float]:
        """Metrics on `split` (the same on every process; all processes must call it).

        Evaluate at most `config.train.eval_batches` batches when that is set (during
        training), the whole split when it is None (experiments.evaluate).
        """

    def metadata(self) -> dict[str, Any]:
        """JSON-able facts every checkpoint records for this task (e.g. the label names)."""
        return {}

    def demo(self, ctx: EvalContext, params: Any) -> str | None:
        """Text shown after training (an LM sample, a few decoded examples), or None."""
        return None

    def predict(self, ctx: EvalContext, params: Any, lines: Sequence[str]) -> list[str]:
        """One output line per input line (experiments.predict)."""
        raise UserError(f"task {self.name!r} has no predict: use experiments.generate")
