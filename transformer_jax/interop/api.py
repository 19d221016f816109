"""`load_hf` / `save_hf`: Hugging Face directories <-> (model, params, tokenizer) in a notebook.

    model, params, tokenizer = tj.load_hf("path/to/gpt2", mesh=tj.make_mesh(fsdp=-1, data=1))
    logits = model.apply({"params": params}, tokens)        # the HF model's logits
    tj.save_hf(model, params, tokenizer, "path/to/out")     # transformers.AutoModel*-loadable
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from safetensors.numpy import save_file

from transformer_jax import sharding as sharding_lib
from transformer_jax.data.hf_tokenizer import HFTokenizer, load_hf_tokenizer
from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError
from transformer_jax.interop import hf_files, models, placing, registry
from transformer_jax.interop.family import Architecture, HFFamily

# Written next to a converted run's config: what the checkpoint came from, so an export
# goes back to the same Hugging Face architecture.
HF_SOURCE_FILE = "hf_source.json"


def open_hf(path: str | os.PathLike) -> tuple[hf_files.HFCheckpoint, HFFamily, Architecture]:
    """Opens a Hugging Face directory and resolves its family and architecture (no weights
    are read; every UserError/UnsupportedConfig is raised here)."""
    checkpoint = hf_files.HFCheckpoint(path)
    family = registry.family_for(checkpoint.config, str(checkpoint.directory / hf_files.CONFIG))
    return checkpoint, family, family.architecture(checkpoint.config)


def import_into(checkpoint: hf_files.HFCheckpoint, family: HFFamily, arch: Architecture,
                init_params: Callable[[jax.Array], Any], mesh: jax.sharding.Mesh) -> Any:
    """The checkpoint's params in the layout and shardings `init_params` gives on `mesh`.

    Args:
      checkpoint, family, arch: from `open_hf`.
      init_params: rng -> boxed (logically partitioned) params of the target model, e.g.
        `lambda rng: model.init(rng, tokens)["params"]` (only its shapes are used).
      mesh: where the params go.
    """
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        boxed = jax.eval_shape(init_params, jax.random.key(0))
        shardings = sharding_lib.tree_shardings(boxed, mesh)
        abstract = sharding_lib.strip_boxes(boxed)
        entries = family.import_params(checkpoint.config, arch, checkpoint.read)
        return placing.place_params(entries, abstract, shardings)


def load_hf(path: str | os.PathLike, mesh: jax.sharding.Mesh | None = None, *,
            scan_layers: bool = False) -> tuple[nn.Module, Any, TextTokenizer]:
    """(model, params, tokenizer) from a local Hugging Face model directory.

    Args:
      path: a directory with config.json, weights (model.safetensors, a sharded index, or
        pytorch_model.bin with torch installed) and tokenizer files.
      mesh: where the params go (default: one device); each device gets only its shards.
      scan_layers: stack the layers for `nn.scan` (default: unrolled `layers_i`).

    Returns:
      The deterministic (eval) model, its params (`model.apply({"params": params}, ...)`),
      and the tokenizer.
    """
    checkpoint, family, arch = open_hf(path)
    tokenizer = load_hf_tokenizer(checkpoint.directory)
    config = arch.model.replace(scan_layers=scan_layers, deterministic=True)
    model, inputs = models.model_for(arch, config)
    mesh = mesh or sharding_lib.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    params = import_into(checkpoint, family, arch,
                         lambda rng: model.init(rng, **inputs)["params"], mesh)
    return model, params, tokenizer


def save_hf(model: nn.Module, params: Any, tokenizer: TextTokenizer | None,
            path: str | os.PathLike, *, model_type: str | None = None,
            hf_class: str = "") -> None:
    """Writes a Hugging Face directory (config.json, model.safetensors, tokenizer files)
    that `transformers.AutoModel*.from_pretrained(path)` loads.

    Args:
      model: the project model (its config and class pick the architecture).
      params: its params (scanned or unrolled, sharded or not).
      tokenizer: written as Hugging Face files when it is an `HFTokenizer` (a SentencePiece
        tokenizer is written as `tokenizer.model`); None writes none.
      path: the output directory (created; must not hold a config.json yet).
      model_type: the Hugging Face model_type (default: from the model config).
      hf_class: the `transformers` class to write (default: the family's).
    """
    out = pathlib.Path(path)
    if (out / hf_files.CONFIG).exists():
        raise UserError(f"{out} already holds a config.json; export into a new directory")
    task, num_labels = models.task_of_model(model)
    config = model.config.replace(scan_layers=False, deterministic=False, decode=False)
    model_type = model_type or models.default_model_type(config)
    family = registry.family_for({"model_type": model_type}, "export")
    arch = Architecture(model=config, task=task, num_labels=num_labels, hf_class=hf_class)
    hf_config, tensors = family.export(arch, placing.unrolled_host_params(params))
    arrays = {name: np.ascontiguousarray(value, np.float32) for name, value in tensors}
    hf_config = {**hf_config, **_special_ids(tokenizer), "dtype": "float32"}
    out.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(out / hf_files.SAFETENSORS), metadata={"format": "pt"})
    if isinstance(tokenizer, HFTokenizer):
        tokenizer.save_files(out, hf_dir=True)
    elif tokenizer is not None:
        tokenizer.save_to_dir(out)
    (out / hf_files.CONFIG).write_text(json.dumps(hf_config, indent=2) + "\n")


def _special_ids(tokenizer: TextTokenizer | None) -> dict[str, int]:
    """config.json's `*_token_id` entries from the tokenizer (those it has)."""
    if not isinstance(tokenizer, HFTokenizer):
        return {}
    ids = {f"{role}_token_id": tokenizer.special_id(role) for role in ("bos", "eos", "pad")}
    return {k: v for k, v in ids.items() if v is not None}
