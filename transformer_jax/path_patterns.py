"""Regexes over parameter paths given in a config (`lora.targets`, `prune.targets`, ...)."""

from __future__ import annotations

import re
from typing import Any

from transformer_jax.errors import UserError


def config_patterns(value: Any, key: str) -> tuple[str, ...]:
    """Comma-separated regexes (or a sequence of them) from config key `key`, each checked.

    Args:
      value: "a/kernel$,b/kernel$", a list of regexes, or None/"" (no patterns).
      key: the config key the value came from, e.g. "lora.targets" (named in the error).

    Raises:
      UserError: naming `config.<key>`, for a pattern that is not a regular expression.
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    patterns = tuple(p.strip() for p in items if p.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise UserError(f"config.{key}: {pattern!r} is not a regular expression "
                            f"({e}); give comma-separated Python regexes") from None
    return patterns
