"""A run, resolved before anything is written: config, task, mesh, workdir, tokenizer.

Resume order (big_vision): a checkpoint in the workdir, then `config.init_from` (pretrained
weights for the matching parts of the model), then fresh. Everything a user can get wrong is
checked here, so a run that fails to start never touches an existing workdir's checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import flax.linen as nn
import jax
import ml_collections
from absl import logging
from etils import epath

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax import tasks as tasks_lib
from transformer_jax import workpath
from transformer_jax.data import text_tokenizer
from transformer_jax.data import tokenizer as tokenizer_lib
from transformer_jax.errors import UserError
from transformer_jax.models.config import SHAPE_FIELDS, ModelConfig, model_config_from
from transformer_jax.placement import Placement
from transformer_jax.run import profiling
from transformer_jax.train import lora, optim, pretrained
from transformer_jax.train import state as state_lib

TOKENIZER_FILE = text_tokenizer.SENTENCEPIECE_FILE  # or a Hugging Face tokenizer/ folder
# This invocation's resolved config, written at the top of the workdir (JSON).
CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class Run:
    """What `setup_run` resolved: the pieces a training, evaluation or decoding needs.

    Attributes:
      config: the experiment config, resolved (a copy: the caller's is never written).
      model_config: the model config the task trains.
      mesh: the device mesh.
      workdir: the run directory (absolute, or a URL such as gs://bucket/run).
      checkpointer: the workdir's checkpoints.
      task: the task (`config.task.name`).
      tokenizer: the workdir's, `init_from`'s, or the cached/trained tokenizer.
      pretrained: the `init_from` checkpoint for a fresh run, else None.
    """

    config: ml_collections.ConfigDict
    model_config: ModelConfig
    mesh: jax.sharding.Mesh
    workdir: epath.Path
    checkpointer: checkpoint_lib.Checkpointer
    task: tasks_lib.Task
    tokenizer: text_tokenizer.TextTokenizer
    pretrained: pretrained.Pretrained | None

    def placement(self, batch_size: int | None = None) -> Placement:
        """Placement of global batches of `batch_size` rows (default: train.batch_size)."""
        return Placement.for_batch(self.mesh, batch_size or self.config.train.batch_size)


def setup_run(config: ml_collections.ConfigDict, workdir: str, check_data: bool = True, *,
              write: bool = True) -> Run:
    """Validates the config against the devices and the workdir; resolves the tokenizer.

    Raises UserError (before writing anything) for: an unknown task or a config the task
    rejects, a mesh that doesn't fit the devices, a batch not divisible by the data-parallel
    size, a workdir whose checkpoint has another model shape or vocabulary, an `init_from`
    that doesn't fit, a bucket (gs://) that is missing or can't be read (or written, if
    `write`: training) within seconds, and with `check_data` (training; not
    evaluate/predict, whose machine may lack the corpus) an empty data split.
    """
    model_config = lora.with_lora(model_config_from(config.model), config)
    mesh = sharding_lib.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    _check_train_section(config.train, sharding_lib.data_parallel_size(mesh))
    lora.make_optimizer(config, config.train.steps)  # UserError for a bad optim/lora key
    workdir_path = workpath.resolve(workdir)
    workpath.check_reachable(workdir_path, write=write)
    checkpointer = checkpoint_lib.Checkpointer(
        workdir_path / "checkpoints", max_to_keep=config.train.max_to_keep
    )
    existing = checkpointer.read_metadata()
    meta = existing[1] if existing else None
    if meta is not None:
        _check_compatible(meta, model_config, checkpointer.directory)
        lora.check_resume(meta.get("model", {}), model_config, checkpointer.directory)
        _warn_if_schedule_moves(meta, existing[0], config)
        _warn_if_recipe_changes(meta, config)
    config = _resolved(config, meta)
    task = tasks_lib.make_task(config, model_config)
    if check_data:
        task.check_data()  # an empty split fails here, not after training
    located = (pretrained.locate(config.init_from, model_config)
               if meta is None and config.get("init_from") else None)
    tokenizer = _resolve_tokenizer(task, model_config, workdir_path, located)
    return Run(config, model_config, mesh, workdir_path, checkpointer, task, tokenizer, located)


def _check_train_section(tcfg: ml_collections.ConfigDict, data_parallel: int) -> None:
    if tcfg.batch_size % (data_parallel * tcfg.grad_accum_steps) or (
            tcfg.batch_size % jax.process_count()):
        raise UserError(
            f"train.batch_size={tcfg.batch_size} must be divisible by the data-parallel size "
            f"{data_parallel} (mesh.data*mesh.fsdp) times train.grad_accum_steps="
            f"{tcfg.grad_accum_steps}"
        )
    if not isinstance(tcfg.get("steps_per_call"), int) or tcfg.steps_per_call < 1:
        raise UserError(
            f"train.steps_per_call={tcfg.get('steps_per_call')!r}: set it to the number of "
            "optimizer steps per jitted call, an integer >= 1 (1 = one step per call)"
        )
    profiling.parse_steps(tcfg.get("profile_steps", ""))  # UserError for a bad range
    if tcfg.get("on_nonfinite", "stop") not in ("stop", "skip"):
        raise UserError(f"train.on_nonfinite={tcfg.on_nonfinite!r}: use 'stop' or 'skip'")


def _resolved(config: ml_collections.ConfigDict, meta: dict | None) -> ml_collections.ConfigDict:
    """A copy of `config` with data.num_shards resolved (0 = the checkpoint's, else one per
    process), checked.

    The data stream is split into that many virtual shards (data/lm_pipeline.py); a process
    reads only its own, and a checkpoint resumes on any process count dividing it.
    """
    config = config.copy_and_resolve_references()
    if "num_shards" not in config.data:
        return config
    processes = jax.process_count()
    if not config.data.num_shards:
        saved = (meta or {}).get("config", {}).get("data", {}).get("num_shards")
        config.data.num_shards = saved or processes
    shards, batch = config.data.num_shards, config.train.batch_size
    if shards % processes or batch % shards:
        raise UserError(
            f"data.num_shards={shards} must be a multiple of the process count {processes} "
            f"and divide train.batch_size={batch}; resuming on another process count needs "
            "one that divides the shard count"
        )
    return config


def _check_compatible(meta: dict, model_config: ModelConfig, directory: epath.Path) -> None:
    saved = meta.get("model", {})
    for field in SHAPE_FIELDS:
        mine = getattr(model_config, field)
        if field in saved and saved[field] != mine:
            raise UserError(
                f"checkpoint in {directory} has model.{field}={saved[field]!r} but the config "
                f"says {mine!r}: use another --workdir, or set --config.model.{field}="
                f"{saved[field]!r} to resume it"
            )


def _warn_if_schedule_moves(meta: dict, step: int, config: ml_collections.ConfigDict) -> None:
    """Warns when a resume changes train.steps: the learning-rate schedule ends there, so its
    value at the resumed step jumps (a deliberate choice, e.g. to train longer; say so)."""
    saved = meta.get("config", {}).get("train", {}).get("steps")
    if saved is None or saved == config.train.steps:
        return
    before = float(optim.make_schedule(config.optim, saved)(step))
    after = float(optim.make_schedule(config.optim, config.train.steps)(step))
    logging.warning(
        "train.steps changed from %d (the checkpoint's) to %d: the learning-rate schedule now "
        "ends at %d, so at the resumed step %d the rate moves from %.3g to %.3g",
        saved, config.train.steps, config.train.steps, step, before, after)


# What a resumed run's trajectory depends on besides train.steps (which has its own warning):
# the batch, the seed, the optimizer and its schedule, the data and how it is cut.
_RECIPE_KEYS = ("train.batch_size", "train.grad_accum_steps", "train.seed", "optim", "data")
# Where things are, not what they are (0 shards = the checkpoint's count, resolved below).
_NOT_RECIPE = {"data.num_shards", "data.tokenizer_cache_dir", "data.tfds_data_dir"}


def _warn_if_recipe_changes(meta: dict, config: ml_collections.ConfigDict) -> None:
    """Warns, listing each field, when a resume trains with another recipe than the checkpoint
    was trained with (e.g. a pulled change of the defaults): the run continues as a hybrid."""
    saved_config = meta.get("config", {})
    changed = []
    for key in _RECIPE_KEYS:
        section, _, field = key.partition(".")
        if section not in config:
            continue
        saved = saved_config.get(section, {})
        mine = json.loads(config[section].to_json())
        pairs = [(field, saved.get(field), mine.get(field))] if field else [
            (name, saved.get(name), mine.get(name)) for name in sorted(set(saved) | set(mine))]
        changed += [f"{section}.{name} {old!r} -> {new!r}" for name, old, new in pairs
                    if name in saved and old != new and f"{section}.{name}" not in _NOT_RECIPE]
    if changed:
        logging.warning(
            "resuming with settings other than the checkpoint's: %s; the run continues with the "
            "new ones (use another --workdir to train them from the start)", ", ".join(changed))


def _resolve_tokenizer(task: tasks_lib.Task, model_config: ModelConfig,
                       workdir: epath.Path, located: pretrained.Pretrained | None
                       ) -> text_tokenizer.TextTokenizer:
    """The workdir's tokenizer (resume), else init_from's or the task's
    (`Task.tokenizer_from`: a distillation teacher's), else the cached/trained one.

    A run directory holds a SentencePiece `tokenizer.model` or a Hugging Face `tokenizer/`
    folder (a converted checkpoint's); `init_from=hf:DIR` uses DIR's tokenizer files.
    """
    path, tok = workdir, text_tokenizer.load_from_dir(workdir)
    located = located or (task.tokenizer_from() if tok is None else None)
    if tok is None and located is not None:
        path = located.workdir
        if located.hf:
            from transformer_jax.data.hf_tokenizer import load_hf_tokenizer

            tok = load_hf_tokenizer(path)
        else:
            tok = text_tokenizer.load_from_dir(path)
    vocab_size = model_config.vocab_size
    if tok is None:
        path = "(cache)"
        tok = tokenizer_lib.load_or_train(
            task.tokenizer_source(), vocab_size,
            cache_dir=task.config.data.tokenizer_cache_dir or None,
            user_defined_symbols=task.special_tokens,
        )
    for piece in task.special_tokens:
        tok.piece_id(piece)  # UserError if missing
    # A Hugging Face model's embedding table may be padded past its tokenizer's ids.
    if tok.vocab_size > vocab_size or (
            isinstance(tok, tokenizer_lib.Tokenizer) and tok.vocab_size != vocab_size):
        raise UserError(
            f"tokenizer in {path} has {tok.vocab_size} tokens but "
            f"model.vocab_size={vocab_size}: use another --workdir or matching vocab_size"
        )
    return tok


def metadata(run: Run) -> dict:
    """What every checkpoint records about its layout (docs/architecture.md, checkpoints)."""
    return {
        "preset": run.model_config.preset,
        "model": run.model_config.to_dict(),
        "vocab_size": run.tokenizer.vocab_size,
        "scan_layers": run.model_config.scan_layers,
        "mesh": dict(run.mesh.shape),
        "seq_len": run.config.data.seq_len,
        "task": {"name": run.task.name, **run.task.metadata()},
        "config": json.loads(run.config.to_json()),
    }


def state_layout(run: Run, model: nn.Module, optimizer) -> tuple[Any, Any, Any]:
    """(init_params, restore target, shardings) of the train state on the run's mesh.

    Call inside `jax.set_mesh(run.mesh)` and `nn.logical_axis_rules(...)`. The target is a
    pytree of `ShapeDtypeStruct(..., sharding=...)`: what Orbax restores into.
    """
    init_params = functools.partial(run.task.init_params, model)
    abstract, shardings = state_lib.state_shardings(init_params, optimizer, run.mesh)
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return init_params, target, shardings


def restore_state(run: Run, data_iterator=None, step: int | None = None
                  ) -> state_lib.TrainState | None:
    """The newest good checkpoint's (or `step`'s) train state on the run's mesh (None: no
    checkpoint)."""
    model = run.task.build_model(run.model_config)
    optimizer, _ = lora.make_optimizer(run.config, run.config.train.steps)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        _, target, _ = state_layout(run, model, optimizer)
        restored = run.checkpointer.restore(target, data_iterator, step)
    return None if restored is None else restored[1]
