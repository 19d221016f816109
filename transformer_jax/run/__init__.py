"""The trainer and the run directory: what drives tasks (above `tasks/`, below `experiments/`)."""

from transformer_jax.run.setup import Run, metadata, restore_state, setup_run, state_layout
from transformer_jax.run.trainer import train_and_evaluate

__all__ = ["Run", "metadata", "restore_state", "setup_run", "state_layout", "train_and_evaluate"]
