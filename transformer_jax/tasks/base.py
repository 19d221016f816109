"""The contract between the one trainer (`transformer_jax/run/`) and a family/task.

A task supplies pure pieces; the trainer owns placement (`placement.Placement`), the
jitted train and eval steps, the evaluation loop, throughput accounting, checkpoints and
preemption. To add a task: subclass `Task`, register it in `tasks/__init__.py`, and give it
a config in `experiments/configs/` (docs/architecture.md walks through one).

Training: `build_model`, `init_batch`, `model_inputs`, `loss_fn`, `train_batches` (and,
for distillation, `frozen_params` and `tokenizer_from`); for tokens/s and MFU,
`tokens_per_example`, `real_tokens` and `flops_per_token`.
Evaluation, run by `run/evaluation.py`:

    sums = Σ over eval_batches(...) of eval_sums(model, params, batch)   # jitted once
    metrics = eval_metrics(sums) | decoded_metrics(...)                 # host side

Batches are dicts of numpy arrays whose leading axis is the batch; the trainer turns each
process's rows into global arrays sharded over the mesh's batch axes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from transformer_jax.data.splits import TextSource
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.placement import Placement
from transformer_jax.train.pretrained import Pretrained
from transformer_jax.train.step import Batch, LossFn

__all__ = ["Batch", "BatchIterator", "LossFn", "Task", "check_options"]


class BatchIterator(Protocol):
    """Training batches with resumable state (see data/batching.py and data/lm_pipeline.py).

    `get_state()` must be JSON-serializable and the same on every process; `set_state`
    must continue exactly where that state was taken, for any process count.
    """

    def __next__(self) -> Batch: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...

    def close(self) -> None: ...


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

    def check_data(self) -> None:
        """UserError when a split of the data is empty, before the run writes anything
        (default: nothing checked here; the data's first use finds out)."""
        return None

    def tokenizer_source(self) -> TextSource:
        """Train-split documents the tokenizer is trained on when none is cached."""
        from transformer_jax.data import sources

        return sources.make_source(self.config.data, "train")

    # Training ---------------------------------------------------------------------------
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

    def frozen_params(self, mesh: jax.sharding.Mesh) -> Any:
        """Params the loss reads but never trains (a distillation teacher's), or None.

        The trainer calls this once, inside the mesh and the logical-axis rules, before it
        writes anything, and passes the result to every train step as a jit argument
        (`loss_fn(params, batch, rng, frozen=...)`); it is never saved. Default: None.
        """
        return None

    def tokenizer_from(self) -> Pretrained | None:
        """A run whose tokenizer a fresh run without `init_from` must use (a distillation
        teacher's), or None (default): the cached or trained one."""
        return None

    @abc.abstractmethod
    def train_batches(self, tokenizer: TextTokenizer, *, batch_size: int, seed: int,
                      process_index: int, process_count: int) -> BatchIterator:
        """This process's rows of each training batch, forever, with resumable state."""

    def tokens_per_example(self) -> int:
        """Token positions one training example feeds the model (`flops_per_token`'s unit)."""
        return self.config.data.seq_len

    @abc.abstractmethod
    def real_tokens(self, batch: Batch) -> jax.Array:
        """The non-padding tokens among a batch's `tokens_per_example` positions per row.

        A scalar, computed inside the jitted train step (so pure jnp); the trainer's tokens/s
        and MFU count these, so padding never inflates them.
        """

    @abc.abstractmethod
    def flops_per_token(self) -> float:
        """Training FLOPs (forward + backward) per token of `tokens_per_example` (for MFU)."""

    # Evaluation -------------------------------------------------------------------------
    @abc.abstractmethod
    def eval_batches(self, tokenizer: TextTokenizer, split: str, *, batch_size: int,
                     process_index: int, process_count: int, max_batches: int | None
                     ) -> Iterable[Batch]:
        """This process's rows of each evaluation batch of `split`, in order, then stop.

        Every process must yield the same number of batches (pad with zero-weight rows).
        `max_batches` caps the count (None: the whole split).
        """

    @abc.abstractmethod
    def eval_sums(self, model: nn.Module, params: Any, batch: dict[str, jax.Array]
                  ) -> dict[str, jax.Array]:
        """Additive statistics of one global batch (pure; the trainer jits it once).

        `model` is the eval model (`deterministic=True`). The trainer adds the values up
        over all batches in float64 (arrays element-wise, e.g. a confusion matrix).
        """

    @abc.abstractmethod
    def eval_metrics(self, sums: dict[str, np.ndarray], complete: bool = False
                     ) -> dict[str, float]:
        """The metrics of a split from its summed `eval_sums`.

        `complete` is True when the whole split was evaluated (not a bounded evaluation
        during training): a task may add detail then (e.g. confusion-matrix cells).
        """

    def eval_images(self, sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Images of a split's summed `eval_sums` for TensorBoard, by name (uint8
        [H, W, 3]), e.g. a confusion matrix; none by default."""
        return {}

    def decoded_metrics(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                        split: str, max_batches: int | None) -> dict[str, float]:
        """Metrics that need decoded outputs on the host (BLEU/ROUGE, SQuAD, entity F1).

        Called on every process after the sums; `max_batches` is None for a full
        evaluation. Default: none.
        """
        return {}

    # After training and for inference ---------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """JSON-able facts every checkpoint records for this task (e.g. the label names)."""
        return {}

    def demo(self, placement: Placement, params: Any, tokenizer: TextTokenizer) -> str | None:
        """Text shown after training (an LM sample, a few decoded examples), or None."""
        return None

    def predict(self, placement: Placement, params: Any, tokenizer: TextTokenizer,
                lines: Sequence[str], **options: Any) -> list[str]:
        """One output line per input line (experiments.predict).

        `options` are decoding options (temperature, beam_size, ...) for tasks that decode;
        a task rejects those it does not take with `check_options`.
        """
        raise UserError(f"task {self.name!r} has no predict")


def check_options(task_name: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """UserError naming the first option `task_name`'s predict does not take."""
    for key in options:
        if key not in allowed:
            takes = f"takes only {', '.join('--' + a for a in allowed)}" if allowed else (
                "takes no decoding options")
            raise UserError(f"--{key}: a {task_name!r} run {takes}; drop --{key}")
