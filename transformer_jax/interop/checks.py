"""Reading Hugging Face config fields strictly: required keys, and refusing what can't map.

Shared by the family modules so every refusal is one line naming the field and its value.
"""

from __future__ import annotations

from typing import Any

from transformer_jax.errors import UserError
from transformer_jax.interop.family import UnsupportedConfig

_MISSING = object()


def required(hf_config: dict, key: str) -> Any:
    """`hf_config[key]` (UserError naming the key when config.json lacks it)."""
    value = hf_config.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise UserError(f"config.json has no {key!r}; it is required for "
                        f"model_type={hf_config.get('model_type')!r}")
    return value


def refuse_unless(hf_config: dict, key: str, allowed: tuple, why: str) -> None:
    """UnsupportedConfig when `hf_config[key]` is present and not one of `allowed`."""
    value = hf_config.get(key, allowed[0])
    if value not in allowed:
        raise UnsupportedConfig(
            f"config.json {key}={value!r} is not supported ({why}); supported: "
            f"{', '.join(repr(a) for a in allowed)}")


def architecture_name(hf_config: dict, known: tuple[str, ...]) -> str:
    """The checkpoint's `architectures[0]` (default: `known[0]`), refused if not in `known`."""
    names = hf_config.get("architectures") or [known[0]]
    if names[0] not in known:
        raise UnsupportedConfig(
            f"config.json architectures={names!r}: only {', '.join(known)} convert for "
            f"model_type={hf_config.get('model_type')!r}")
    return names[0]
