"""Fold a LoRA run's adapters into its base weights: a plain run directory for export.

The merged run has the same task, data and tokenizer, `lora.rank = 0`, and one checkpoint at
the LoRA run's step whose params are W + (alpha / r) * A . B for every adapted kernel (the
other params as trained). Its optimizer state is fresh (zero moments), its data iterator
state the LoRA run's, so `experiments.evaluate`, `predict`, `generate`, `init_from` and
further (full) training all take it like any other run.
"""

from __future__ import annotations

import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from transformer_jax import sharding as sharding_lib
from transformer_jax.errors import UserError
from transformer_jax.models.lora import merge_params
from transformer_jax.run.setup import CONFIG_FILE, metadata, restore_state, setup_run, state_layout
from transformer_jax.run.workdir import recorded_config
from transformer_jax.train import lora
from transformer_jax.train.state import TrainState


def merge_workdir(workdir: str, out: str, step: int | None = None) -> int:
    """Writes the merged run of LoRA run `workdir` (its newest checkpoint, or `step`) to `out`.

    Args:
      workdir: a run trained with `config.lora.rank > 0`.
      out: the new run directory (must hold no checkpoint yet).
      step: the checkpoint step to merge (None: the newest good one).

    Returns:
      The merged checkpoint's step.

    Raises:
      UserError: not a LoRA run, `out` is `workdir` or already has checkpoints (checked
        before anything is written).
    """
    config = recorded_config(workdir)
    run = setup_run(config, workdir)
    settings = run.model_config.lora
    if settings is None:
        raise UserError(f"{workdir} was trained without LoRA (config.lora.rank=0): its "
                        "weights are already plain; use it directly")
    out_path = pathlib.Path(out).absolute()
    if out_path == run.workdir:
        raise UserError(f"--out={out} is the LoRA run itself: give a new directory")
    plain = _plain_config(run.config, workdir)
    out_run = setup_run(plain, str(out_path))
    if out_run.checkpointer.steps():
        raise UserError(f"--out={out} already holds checkpoints "
                        f"({out_run.checkpointer.directory}): give a new directory")
    placement = run.placement()
    data = run.task.train_batches(
        run.tokenizer, batch_size=placement.local_batch, seed=run.config.train.seed,
        process_index=placement.process_index, process_count=placement.process_count)
    try:
        state = restore_state(run, data, step)
        if state is None:
            raise UserError(f"no checkpoint in {run.checkpointer.directory} can be restored")
        model = out_run.task.build_model(out_run.model_config)
        optimizer, _ = lora.make_optimizer(out_run.config, out_run.config.train.steps)
        with jax.set_mesh(out_run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
            _, _, shardings = state_layout(out_run, model, optimizer)
            params = jax.jit(lambda p: merge_params(p, settings.scale),
                             out_shardings=shardings.params)(state.params)
            merged = jax.jit(
                lambda s, p: TrainState(step=s, params=p, opt_state=optimizer.init(p)),
                out_shardings=shardings)(jnp.asarray(state.step, jnp.int32), params)
        out_path.mkdir(parents=True, exist_ok=True)
        merged_step = int(merged.step)
        out_run.checkpointer.save(merged_step, merged, data, metadata(out_run), force=True)
        out_run.checkpointer.wait()
        out_run.checkpointer.close()
    finally:
        data.close()
    if jax.process_index() == 0:
        out_run.tokenizer.save(str(out_path / "tokenizer.model"))
        (out_path / CONFIG_FILE).write_text(out_run.config.to_json_best_effort(indent=2) + "\n")
    return merged_step


def _plain_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """The LoRA run's config with LoRA off; `init_from` names the LoRA run (its tokenizer)."""
    plain = config.copy_and_resolve_references()
    plain.lora.rank = 0
    plain.init_from = str(pathlib.Path(workdir).absolute())
    return plain
