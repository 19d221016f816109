"""Hugging Face directory <-> project run directory (what `experiments.convert` does).

A converted run directory is an ordinary run: `config.json`, the tokenizer, and an Orbax
checkpoint at step 0 whose metadata (model config, scan layout, task, full config) is what
`experiments.train` (resume, or `init_from`), `evaluate`, `predict` and `generate` read. The
whole directory is written under a temporary name and renamed at the end, so a failed
conversion leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from transformer_jax import sharding as sharding_lib
from transformer_jax.data.hf_tokenizer import load_hf_tokenizer
from transformer_jax.errors import UserError
from transformer_jax.interop import api
from transformer_jax.interop.family import Architecture
from transformer_jax.models.config import model_config_from
from transformer_jax.run.setup import CONFIG_FILE, metadata, setup_run, state_layout
from transformer_jax.run.workdir import load_run
from transformer_jax.train import optim
from transformer_jax.train.state import TrainState

_NOT_SET = ("preset", "dtype", "scan_layers")


def run_config(base: ml_collections.ConfigDict, arch: Architecture,
               scan_layers: bool | None) -> ml_collections.ConfigDict:
    """`base` (an experiment config of the checkpoint's task) with the model section set to
    exactly `arch.model`.

    Args:
      base: e.g. experiments/configs/gpt_stdlib.py's config.
      arch: the converted architecture.
      scan_layers: the params layout (None: the device default, unrolled on CPU).
    """
    config = base.copy_and_resolve_references()
    task = config.task.name if "task" in config else "lm"
    if task != arch.task:
        raise UserError(f"--config is a {task!r} config but the checkpoint is a {arch.task!r} "
                        "model: pass a config of that task")
    with config.unlocked():
        config.init_from = ""
        config.model.preset = arch.model.preset
        for key in config.model:
            if key not in _NOT_SET:
                config.model[key] = getattr(arch.model, key)
        if scan_layers is None:
            scan_layers = model_config_from(config.model).scan_layers
        config.model.scan_layers = scan_layers
        config.data.seq_len = min(config.data.seq_len, arch.model.max_len)
    return config


def from_hf(hf_dir: str, workdir: str, base: ml_collections.ConfigDict,
            scan_layers: bool | None = None) -> pathlib.Path:
    """Converts a Hugging Face directory into a new run directory `workdir`.

    Raises:
      UserError: a bad or unsupported checkpoint, a missing tokenizer, or a workdir that
        already has content (before anything is written).
    """
    checkpoint, family, arch = api.open_hf(hf_dir)
    tokenizer = load_hf_tokenizer(checkpoint.directory)
    out = pathlib.Path(workdir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--workdir={workdir} already exists and is not empty: convert into "
                        "a new directory")
    config = run_config(base, arch, scan_layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.converting-{os.getpid()}"
    tmp.mkdir()
    try:
        tokenizer.save_to_dir(tmp)
        run = setup_run(config, str(tmp))
        _write_step0(run, checkpoint, family, arch)
        (tmp / CONFIG_FILE).write_text(run.config.to_json_best_effort(indent=2) + "\n")
        (tmp / api.HF_SOURCE_FILE).write_text(json.dumps({
            "model_type": checkpoint.config.get("model_type"), "hf_class": arch.hf_class,
            "num_labels": arch.num_labels, "from": str(checkpoint.directory.absolute()),
        }, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _write_step0(run, checkpoint, family, arch) -> None:
    """The converted params (+ a fresh optimizer state) as checkpoint step 0 of `run`."""
    model = run.task.build_model(run.model_config)
    optimizer, _ = optim.make_optimizer(run.config.optim, run.config.train.steps)
    placement = run.placement()
    train_iter = run.task.train_batches(
        run.tokenizer, batch_size=placement.local_batch, seed=run.config.train.seed,
        process_index=placement.process_index, process_count=placement.process_count)
    try:
        with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
            init_params, _, shardings = state_layout(run, model, optimizer)
            params = api.import_into(checkpoint, family, arch, init_params, run.mesh)
            opt_state = jax.jit(optimizer.init, out_shardings=shardings.opt_state)(params)
            step = jax.device_put(jnp.zeros((), jnp.int32),
                                  NamedSharding(run.mesh, PartitionSpec()))
            state = TrainState(step=step, params=params, opt_state=opt_state)
            run.checkpointer.save(0, state, train_iter, metadata(run), force=True)
            run.checkpointer.wait()
    finally:
        run.checkpointer.close()
        train_iter.close()


def to_hf(workdir: str, hf_dir: str) -> pathlib.Path:
    """Exports the newest checkpoint of run directory `workdir` as a Hugging Face directory.

    The architecture is the one the run was converted from (its hf_source.json), else the
    model config's natural one (gpt2 / llama / bert).
    """
    out = pathlib.Path(hf_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--to_hf={hf_dir} already exists and is not empty: export into a new "
                        "directory")
    source_file = pathlib.Path(workdir) / api.HF_SOURCE_FILE
    source = json.loads(source_file.read_text()) if source_file.is_file() else {}
    run, params, _ = load_run(workdir)
    model = run.task.build_model(run.model_config)
    api.save_hf(model, params, run.tokenizer, out, model_type=source.get("model_type"),
                hf_class=source.get("hf_class", ""))
    return out


def to_peft(workdir: str, peft_dir: str, step: int | None = None) -> pathlib.Path:
    """Exports a LoRA run's adapters as a PEFT adapter directory over a `to_hf` export of
    its other weights (`peft_dir/base`; see interop/peft.py). Returns `peft_dir`."""
    from transformer_jax.interop import peft

    source_file = pathlib.Path(workdir) / api.HF_SOURCE_FILE
    source = json.loads(source_file.read_text()) if source_file.is_file() else {}
    run, params, _ = load_run(workdir, step)
    model = run.task.build_model(run.model_config)
    peft.save_peft(model, params, run.tokenizer, peft_dir, model_type=source.get("model_type"),
                   hf_class=source.get("hf_class", ""))
    return pathlib.Path(peft_dir)
