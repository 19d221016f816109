"""Generation from a training run's workdir: rebuild the model from checkpoint metadata."""

from __future__ import annotations

import pathlib

import jax
import ml_collections

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax.errors import UserError
from transformer_jax.tasks import lm
from transformer_jax.train import loop


def load_run(workdir: str) -> tuple[loop.Run, object]:
    """(run, params) of the newest good checkpoint in `workdir`, on this host's devices.

    The model, mesh and optimizer come from the checkpoint's recorded config, so nothing is
    guessed; the mesh is re-fitted to the devices present (-1 on the data axis).
    """
    directory = pathlib.Path(workdir) / "checkpoints"
    found = checkpoint_lib.Checkpointer(directory).read_metadata()
    if found is None:
        raise UserError(f"no checkpoint in {directory}: train first with experiments.train")
    _, meta = found
    config = ml_collections.ConfigDict(meta["config"])
    config.mesh.update(data=-1, fsdp=1, tensor=1)
    run = loop.setup_run(config, workdir)
    state = loop.restore_state(run)
    if state is None:
        raise UserError(f"no checkpoint in {directory} can be restored")
    return run, state.params


def generate_from_workdir(
    workdir: str,
    prompt: str,
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.8,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
) -> str:
    """The text continuing `prompt`, sampled from the newest checkpoint in `workdir`."""
    run, params = load_run(workdir)
    if run.task.name != "lm":
        raise UserError(f"{workdir} holds a {run.task.name!r} run: generate continues text "
                        "for language models; use experiments.predict")
    sample = ml_collections.ConfigDict(dict(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        seed=seed,
    ))
    with jax.set_mesh(run.mesh):
        return lm.sample_text(run.model_config, run.tokenizer, params, prompt, sample)


def evaluate_workdir(workdir: str, split: str = "validation",
                     max_batches: int | None = None) -> dict[str, float]:
    """The task's metrics for the newest checkpoint in `workdir` on `split`.

    Args:
      workdir: a training run's directory.
      split: "validation", "train" or "test" (where the data source has it).
      max_batches: evaluate at most this many batches (None: the whole split).
    """
    run, params = load_run(workdir)
    run.config.train.eval_batches = max_batches
    with jax.set_mesh(run.mesh):
        return run.task.evaluate(run.eval_context(), params, split)


def predict_workdir(workdir: str, lines: list[str]) -> list[str]:
    """One prediction per input line from the newest checkpoint in `workdir`."""
    run, params = load_run(workdir)
    with jax.set_mesh(run.mesh):
        return run.task.predict(run.eval_context(), params, lines)
