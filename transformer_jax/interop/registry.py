"""Which module converts which Hugging Face `model_type` (lazily imported).

To add an architecture: write `transformer_jax/interop/<name>.py` with a module-level
`FAMILY` implementing `family.HFFamily` (or module-level functions and `model_types`:
the module itself is then the family), and add one line per `model_type` here.
"""

from __future__ import annotations

import importlib
import importlib.util

from transformer_jax.errors import UserError
from transformer_jax.interop.family import HFFamily

REGISTRY: dict[str, str] = {
    "gpt2": "transformer_jax.interop.gpt2",
    "llama": "transformer_jax.interop.llama",
    "qwen2": "transformer_jax.interop.llama",
    "bert": "transformer_jax.interop.bert",
    "roberta": "transformer_jax.interop.bert",
    "t5": "transformer_jax.interop.t5",
    "bart": "transformer_jax.interop.bart",
    "marian": "transformer_jax.interop.marian",
}


def family_for(hf_config: dict, where: str = "config.json") -> HFFamily:
    """The family converting `hf_config` (its "model_type"); UserError if none does."""
    model_type = hf_config.get("model_type")
    module_name = REGISTRY.get(model_type) if isinstance(model_type, str) else None
    module = None
    if module_name is not None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
    if module is None:
        supported = sorted(t for t, m in REGISTRY.items() if _available(m))
        raise UserError(f"{where}: model_type={model_type!r} is not supported; supported: "
                        f"{', '.join(supported)}")
    return getattr(module, "FAMILY", module)


def _available(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None
