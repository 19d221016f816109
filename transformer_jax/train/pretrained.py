"""`config.init_from`: start a run from another run's weights (fine-tuning).

The new model's top-level parameter subtrees that also exist in the pretrained checkpoint
(e.g. the `bert` encoder of a classifier, from a `BertForPretraining` run) are loaded from
it; the rest (new heads) keep their fresh initialization. Only those subtrees are read
(Orbax partial restore), straight into the new run's shardings. The tokenizer comes along:
a fine-tuning run uses the pretraining run's tokenizer.

`config.init_from=hf:DIR` reads a Hugging Face model directory instead (interop/): the
subtrees the two models share are converted straight into the new run's shardings, and the
tokenizer comes from DIR's tokenizer files.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from transformer_jax import checkpoint as checkpoint_lib
from transformer_jax import workpath
from transformer_jax.errors import UserError
from transformer_jax.models.config import SHAPE_FIELDS, ModelConfig
from transformer_jax.models.lora import ADAPTER


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A located pretraining checkpoint.

    Attributes:
      workdir: the pretraining run's directory (holds its tokenizer), or the Hugging Face
        directory.
      checkpointer: its checkpoints (None for a Hugging Face directory).
      step: the newest step with readable metadata (0 for a Hugging Face directory).
      meta: that step's metadata (model config, task, ...).
      hf: `workdir` is a Hugging Face model directory (`init_from=hf:DIR`).
    """

    workdir: epath.Path
    checkpointer: checkpoint_lib.Checkpointer | None
    step: int
    meta: dict
    hf: bool = False


def locate(path: str, model_config: ModelConfig) -> Pretrained:
    """Finds the checkpoint for `config.init_from=path` and checks it fits `model_config`.

    Args:
      path: a training workdir, or its `checkpoints` directory (local, or a URL: gs://...).
      model_config: the new run's model config.

    Raises:
      UserError: no checkpoint there, or a shape field (vocab, sizes, ...) differs.
    """
    if path.startswith("hf:"):
        return _locate_hf(path, model_config)
    given = workpath.resolve(path if workpath.is_url(path) else os.path.expanduser(path),
                             flag="config.init_from")
    workpath.check_reachable(given, write=False, flag="config.init_from")
    directory = given if given.name == "checkpoints" else given / "checkpoints"
    found = checkpoint_lib.Checkpointer(directory).read_metadata()
    if found is None:
        raise UserError(
            f"config.init_from={path!r}: no checkpoint in {directory}; give a training workdir"
        )
    step, meta = found
    saved = meta.get("model", {})
    for field in SHAPE_FIELDS:
        if field in saved and field != "scan_layers" and saved[field] != getattr(model_config,
                                                                                   field):
            raise UserError(
                f"config.init_from={path!r} has model.{field}={saved[field]!r} but this config "
                f"says {getattr(model_config, field)!r}: use the same preset and vocab_size"
            )
    if saved.get("scan_layers", model_config.scan_layers) != model_config.scan_layers:
        raise UserError(
            f"config.init_from={path!r} was trained with model.scan_layers="
            f"{saved['scan_layers']}: set --config.model.scan_layers={saved['scan_layers']}"
        )
    return Pretrained(directory.parent, checkpoint_lib.Checkpointer(directory), step, meta)


def _locate_hf(path: str, model_config: ModelConfig) -> Pretrained:
    """`init_from=hf:DIR`: the checkpoint's architecture must have this model's shapes (any
    layer layout: conversion writes the new run's)."""
    from transformer_jax.interop import api

    _, _, arch = api.open_hf(path.removeprefix("hf:"))
    for field in SHAPE_FIELDS:
        theirs, mine = getattr(arch.model, field), getattr(model_config, field)
        if field != "scan_layers" and theirs != mine:
            raise UserError(
                f"config.init_from={path!r} has model.{field}={theirs!r} but this config says "
                f"{mine!r}: set --config.model.{field}={theirs!r}")
    directory = epath.Path(os.path.expanduser(path.removeprefix("hf:"))).absolute()
    return Pretrained(directory, None, 0, {"model": arch.model.to_dict(),
                                           "task": {"name": arch.task}}, hf=True)


def _load_hf_into(pretrained: Pretrained, params: dict[str, Any]) -> dict[str, Any]:
    """`load_into` for a Hugging Face directory: the shared subtrees, converted."""
    from transformer_jax.interop import api, placing

    checkpoint, family, arch = api.open_hf(pretrained.workdir)
    entries = list(family.import_params(checkpoint.config, arch, checkpoint.read))
    shared = sorted(set(params) & {path[0] for path, _ in entries})
    if not shared:
        raise UserError(f"config.init_from=hf:{pretrained.workdir}: its parameters share "
                        f"nothing with this model's ({', '.join(sorted(params))})")
    mine = {name: params[name] for name in shared}
    loaded = placing.place_params(
        ((path, build) for path, build in entries if path[0] in shared),
        jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), mine),
        jax.tree.map(lambda x: x.sharding, mine))
    return {**params, **loaded}


def load_into(pretrained: Pretrained, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with every top-level subtree the checkpoint also has replaced by its values.

    Args:
      pretrained: from `locate`.
      params: the freshly initialized (sharded) parameters of the new model.

    Returns:
      The merged parameters, with the shardings of `params`.

    Raises:
      UserError: nothing in common, or a shared subtree has other shapes.
    """
    if pretrained.hf:
        return _load_hf_into(pretrained, params)
    manager = ocp.CheckpointManager(
        pretrained.checkpointer.directory,
        item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(read_only=True),
    )
    saved_params = manager.item_metadata(pretrained.step)["state"]["params"]
    shared = sorted(set(params) & set(saved_params))
    if not shared:
        raise UserError(
            f"config.init_from={str(pretrained.workdir)!r}: its parameters "
            f"({', '.join(sorted(saved_params))}) share nothing with this model's "
            f"({', '.join(sorted(params))})"
        )
    # LoRA adapters are new in the fine-tuning model: they keep their fresh values.
    base = {name: _without_adapters(params[name]) for name in shared}
    for name in shared:
        mine = jax.tree_util.tree_flatten_with_path(base[name])[0]
        theirs = dict(jax.tree_util.tree_flatten_with_path(saved_params[name])[0])
        for key, leaf in mine:
            other = theirs.get(key)
            if other is None or tuple(other.shape) != leaf.shape:
                raise UserError(
                    f"config.init_from={str(pretrained.workdir)!r}: parameter "
                    f"{name}{jax.tree_util.keystr(key)} has shape "
                    f"{None if other is None else tuple(other.shape)} there but {leaf.shape} here"
                )
    target = {"params": {
        name: jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), base[name]
        ) for name in shared
    }}
    restored = manager.restore(
        pretrained.step,
        args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True,
        )),
    )["state"]["params"]
    manager.close()
    return {**params, **{name: _with_adapters(restored[name], params[name]) for name in shared}}


def _without_adapters(tree: Any) -> Any:
    """`tree` without its LoRA adapter subtrees."""
    if not isinstance(tree, dict):
        return tree
    return {k: _without_adapters(v) for k, v in tree.items() if k != ADAPTER}


def _with_adapters(loaded: Any, fresh: Any) -> Any:
    """`loaded` with the adapter subtrees of `fresh` put back."""
    if not isinstance(fresh, dict):
        return loaded
    return {k: fresh[k] if k == ADAPTER else _with_adapters(loaded[k], fresh[k]) for k in fresh}
