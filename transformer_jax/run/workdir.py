"""A finished run's workdir: load its newest checkpoint to evaluate, predict or generate.

The task, model, mesh and optimizer come from the checkpoint's recorded config, so nothing is
guessed; options (a batch limit, decoding settings) are arguments, never config edits.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import ml_collections

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import workpath
from transformer_jax.compress import int8, store
from transformer_jax.errors import UserError
from transformer_jax.run import profiling
from transformer_jax.run.evaluation import Evaluator
from transformer_jax.run.setup import Run, restore_state, setup_run
from transformer_jax.tasks.lm import LanguageModeling


def checkpoint_metadata(workdir: str) -> dict:
    """The metadata of the newest checkpoint in `workdir` (task, model, config, ...)."""
    if store.is_quantized_dir(workdir):
        return store.read_marker(workdir)["metadata"]
    root = workpath.resolve(workdir)
    workpath.check_reachable(root, write=False)
    directory = root / "checkpoints"
    found = checkpoint_lib.Checkpointer(directory).read_metadata()
    if found is None:
        raise UserError(f"no checkpoint in {directory}: train first with experiments.train")
    return found[1]


def recorded_config(workdir: str) -> ml_collections.ConfigDict:
    """The config recorded in `workdir`'s newest checkpoint, its mesh re-fitted to the
    devices present (-1 on the data axis)."""
    config = ml_collections.ConfigDict(checkpoint_metadata(workdir)["config"])
    config.mesh.update(data=-1, fsdp=1, tensor=1)
    return config


def load_run(workdir: str, step: int | None = None, quantize: str | None = None
             ) -> tuple[Run, Any, int]:
    """(run, params, step) of the newest good checkpoint in `workdir` (or of `step`), on this
    host's devices.

    The mesh is re-fitted to the devices present (-1 on the data axis). `quantize="int8"`
    gives the params after int8 weight quantization (`compress/int8.py`); a directory
    written by `experiments.quantize` loads its int8 weights, dequantized.
    """
    int8.check_scheme(quantize)
    run = setup_run(recorded_config(workdir), workdir, check_data=False, write=False)
    if store.is_quantized_dir(workdir):
        if step is not None:
            raise UserError(f"--step: {workdir} is a quantized run directory with one step")
        params = jax.device_put(int8.dequantize(store.read_weights(workdir)),
                                jax.sharding.NamedSharding(run.mesh, jax.sharding.PartitionSpec()))
        return run, params, int(store.read_marker(workdir)["step"])
    state = restore_state(run, step=step)
    if state is None:
        raise UserError(f"no checkpoint in {run.checkpointer.directory} can be restored")
    params = int8.dequantize(int8.quantize(state.params)) if quantize else state.params
    return run, params, int(state.step)


def task_of_workdir(workdir: str) -> str:
    """The task name recorded in the newest checkpoint of `workdir` ("lm" for old runs)."""
    return checkpoint_metadata(workdir).get("task", {}).get("name", "lm")


def evaluate_workdir(workdir: str, split: str = "validation",
                     max_batches: int | None = None, step: int | None = None,
                     quantize: str | None = None) -> dict[str, float]:
    """The task's metrics for the newest checkpoint in `workdir` on `split`, and its `step`.

    Args:
      workdir: a training run's directory.
      split: "validation", "train" or "test" (where the data source has it).
      max_batches: evaluate at most this many batches (None: the whole split).
      step: evaluate this checkpoint step (None: the newest good one).
      quantize: "int8" to evaluate the int8-quantized weights (None: as trained).
    """
    run, params, restored_step = load_run(workdir, step, quantize)
    with jax.set_mesh(run.mesh):
        metrics = Evaluator(run.task, run.placement(), run.tokenizer)(params, split,
                                                                      max_batches)
    return {**metrics, "step": restored_step}


def predict_workdir(workdir: str, lines: list[str], quantize: str | None = None,
                    **options: Any) -> list[str]:
    """One output line per input line from the newest checkpoint in `workdir`.

    Args:
      workdir: a training run's directory.
      lines: the inputs (their format is the task's: see experiments/predict.py).
      quantize: "int8" to use the int8-quantized weights (None: as trained).
      **options: decoding options the run's task takes (e.g. temperature, beam_size).
    """
    run, params, _ = load_run(workdir, quantize=quantize)
    with jax.set_mesh(run.mesh):
        return run.task.predict(run.placement(), params, run.tokenizer, lines, **options)


def generate_from_workdir(workdir: str, prompt: str, quantize: str | None = None, *,
                          profile: bool = False,
                          **options: Any) -> str:
    """The text continuing `prompt`, sampled from a language model's newest checkpoint.

    Args:
      workdir: an LM training run's directory.
      prompt: the text to continue.
      quantize: "int8" to use the int8-quantized weights (None: as trained).
      profile: write a `jax.profiler` trace of the decode to WORKDIR/profile.
      **options: max_new_tokens, temperature (0 = greedy), top_k, top_p, seed (default: the
        run's `config.sample`).
    """
    run, params, _ = load_run(workdir, quantize=quantize)
    if not isinstance(run.task, LanguageModeling):
        raise UserError(f"{workdir} holds a {run.task.name!r} run: generate continues text "
                        "for language models; use experiments.predict")
    with (jax.set_mesh(run.mesh),
          profiling.trace(run.workdir) if profile else contextlib.nullcontext()):
        return run.task.continuation(params, run.tokenizer, prompt, **options)
