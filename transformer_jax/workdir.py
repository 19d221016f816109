"""A finished run's workdir: load its newest checkpoint to generate, evaluate or predict."""

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


def task_of_workdir(workdir: str) -> str:
    """The task name recorded in the newest checkpoint of `workdir` ("lm" for old runs)."""
    directory = pathlib.Path(workdir) / "checkpoints"
    found = checkpoint_lib.Checkpointer(directory).read_metadata()
    if found is None:
        raise UserError(f"no checkpoint in {directory}: train first with experiments.train")
    return found[1].get("task", {}).get("name", "lm")


def decode_from_workdir(workdir: str, lines: list[str], *, beam_size: int = 4,
                        alpha: float = 0.6, temperature: float = 0.0, seed: int = 0
                        ) -> list[str]:
    """One output per input line from a seq2seq run's newest checkpoint.

    Args:
      workdir: a seq2seq training run's directory.
      lines: source texts.
      beam_size: beam search width; 0 samples instead (temperature 0 = greedy).
      alpha: GNMT length-penalty exponent for beam search.
      temperature: sampling temperature when beam_size is 0.
      seed: sampling seed.
    """
    run, params = load_run(workdir)
    if run.task.name != "seq2seq":
        raise UserError(f"{workdir} holds a {run.task.name!r} run, not a seq2seq one")
    if beam_size < 0:
        raise UserError(f"--beam_size={beam_size} must be >= 0 (0 = greedy/sampling)")
    run.config.task.update(beam_size=beam_size, alpha=alpha)
    with jax.set_mesh(run.mesh):
        return run.task.predict(run.eval_context(), params, lines,
                                temperature=temperature, seed=seed)


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
