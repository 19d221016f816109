"""LoRA adapters as a Hugging Face PEFT adapter over the `--to_hf` export of the base weights.

`save_peft(model, params, tokenizer, out)` writes

  out/base/                    the run's weights without adapters, by `api.save_hf` (the
                               frozen base plus anything trained in full, e.g. a fresh head)
  out/adapter_config.json      PEFT's LoraConfig: r, lora_alpha, lora_dropout, target_modules
  out/adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in] and
                               .lora_B.weight [out, r] per adapted torch module

so that `peft.PeftModel.from_pretrained(AutoModel*.from_pretrained(out/base), out)` computes
the LoRA run's function. PEFT adds lora_B(lora_A(x)) * lora_alpha / r to a module's output,
the project (alpha / r) * x . A . B, so lora_A = A^T and lora_B = B^T (in and out dims
flattened, as the kernel export flattens them). GPT-2 fuses query, key and value into one
Conv1D `c_attn`: its adapter stacks the m adapted projections' A along the rank (rank m r,
`rank_pattern`) with a block-diagonal B, and `alpha_pattern` m alpha keeps the scale.
Architectures: gpt2 and bert/roberta (Llama's and T5's exports are refused for now).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import flax.linen as nn
import numpy as np
from safetensors.numpy import save_file

from transformer_jax.data.text_tokenizer import TextTokenizer
from transformer_jax.errors import UserError
from transformer_jax.interop import api, bert, models, placing
from transformer_jax.models.lora import ADAPTER, DOWN, UP

ADAPTER_CONFIG, ADAPTER_WEIGHTS, BASE_DIR = ("adapter_config.json",
                                             "adapter_model.safetensors", "base")
_QKV = ("query", "key", "value")


def save_peft(model: nn.Module, params: Any, tokenizer: TextTokenizer | None,
              path: str | os.PathLike, *, model_type: str | None = None,
              hf_class: str = "") -> pathlib.Path:
    """Writes the base export and the PEFT adapter of a LoRA model (see the module docstring).

    Args:
      model: the project model with `config.lora` set.
      params: its params, adapters included (scanned or unrolled).
      tokenizer: written with the base export, as `api.save_hf` does.
      path: the adapter directory (new or empty); the base goes to `path/base`.
      model_type, hf_class: as in `api.save_hf`.

    Returns:
      The base export's directory.
    """
    settings = model.config.lora
    if settings is None:
        raise UserError("the run was trained without LoRA (lora.rank=0): export it with "
                        "--to_hf; there is no adapter")
    out = pathlib.Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--peft_out={path} already exists and is not empty: give a new "
                        "directory")
    flat = placing.unrolled_host_params(params)
    adapters = dict(_adapters(flat))
    base_params = _without_adapters(flat)
    base_model = model.clone(config=model.config.replace(lora=None))
    model_type = model_type or models.default_model_type(model.config)
    if model_type in ("bert", "roberta") and not hf_class:  # the class save_hf writes
        hf_class = bert._PREFIX[model_type] + bert._EXPORT_CLASS[models.task_of_model(model)[0]]
    modules = _modules(model_type, hf_class, model.config, list(adapters))
    tensors, ranks = _peft_tensors(adapters, modules, settings.rank)
    api.save_hf(base_model, base_params, tokenizer, out / BASE_DIR, model_type=model_type,
                hf_class=hf_class)
    fused = {m: k for m, k in ranks.items() if k != settings.rank}
    config = {
        "peft_type": "LORA", "task_type": None, "r": settings.rank,
        "lora_alpha": settings.alpha, "lora_dropout": settings.dropout,
        "target_modules": sorted(ranks), "rank_pattern": fused,
        "alpha_pattern": {m: settings.alpha * k / settings.rank for m, k in fused.items()},
        "fan_in_fan_out": model_type == "gpt2", "bias": "none",
        "base_model_name_or_path": str((out / BASE_DIR).absolute()),
        "inference_mode": True, "init_lora_weights": True, "use_rslora": False,
        "use_dora": False, "modules_to_save": None,
    }
    save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out / BASE_DIR


def _adapters(tree: dict, path: tuple[str, ...] = ()):
    """(dense layer path, (A [in..., r], B [r, out...])) for every adapted layer."""
    for key, value in tree.items():
        if key == ADAPTER:
            yield path, (value[DOWN], value[UP])
        elif isinstance(value, dict):
            yield from _adapters(value, (*path, key))


def _without_adapters(tree: dict) -> dict:
    return {k: _without_adapters(v) if isinstance(v, dict) else v
            for k, v in tree.items() if k != ADAPTER}


def _modules(model_type: str, hf_class: str, cfg, layers: list[tuple[str, ...]]
             ) -> dict[tuple[str, ...], tuple[str, int, int]]:
    """Dense layer path -> (torch module name, slot, slots) in the exported architecture."""
    if model_type == "gpt2":
        table = {}
        for i in range(cfg.num_layers):
            layer, hf = ("decoder", f"layers_{i}"), f"transformer.h.{i}."
            for slot, proj in enumerate(_QKV):
                table[(*layer, "self_attention", proj)] = (f"{hf}attn.c_attn", slot, 3)
            table[(*layer, "self_attention", "out")] = (f"{hf}attn.c_proj", 0, 1)
            table[(*layer, "mlp", "wi")] = (f"{hf}mlp.c_fc", 0, 1)
            table[(*layer, "mlp", "wo")] = (f"{hf}mlp.c_proj", 0, 1)
    elif model_type in ("bert", "roberta"):
        table = {link.path[:-1]: (link.name.removesuffix(".weight"), 0, 1)
                 for link in bert._links(model_type, hf_class, cfg)
                 if link.path[-1] == "kernel" and link.exported}
    else:
        raise UserError(f"PEFT export covers gpt2 and bert/roberta exports, not {model_type!r}: "
                        "merge the adapters (experiments.lora_merge --out) and use --to_hf")
    missing = [layer for layer in layers if layer not in table]
    if missing:
        raise UserError(f"adapter on {'/'.join(missing[0])} has no {model_type} module to go "
                        "to: merge the adapters instead (experiments.lora_merge --out)")
    return {layer: table[layer] for layer in layers}


def _peft_tensors(adapters: dict, modules: dict, rank: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """PEFT's lora_A / lora_B tensors by key, and each torch module's rank."""
    by_module: dict[str, list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
    for layer, (a, b) in adapters.items():
        name, slot, slots = modules[layer]
        by_module.setdefault(name, []).append((slot, slots, a.reshape(-1, rank),
                                               b.reshape(rank, -1)))
    tensors, ranks = {}, {}
    for name, parts in by_module.items():
        parts.sort(key=lambda p: p[0])
        width, slots = parts[0][3].shape[1], parts[0][1]
        lora_a = np.concatenate([a.T for _, _, a, _ in parts])  # [m r, in]
        lora_b = np.zeros((slots * width, rank * len(parts)), np.float32)  # [out, m r]
        for j, (slot, _, _, b) in enumerate(parts):
            lora_b[slot * width:(slot + 1) * width, j * rank:(j + 1) * rank] = b.T
        key = f"base_model.model.{name}"
        tensors[f"{key}.lora_A.weight"] = np.ascontiguousarray(lora_a, np.float32)
        tensors[f"{key}.lora_B.weight"] = lora_b
        ranks[name] = rank * len(parts)
    return tensors, ranks
