"""Model construction by family."""

from __future__ import annotations

import flax.linen as nn

from transformer_jax.errors import UserError
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.gpt import GPT


def build_model(model_config: ModelConfig) -> nn.Module:
    """The LM trainer's model for the config's family (decoder-only GPT)."""
    if model_config.family != "gpt":
        raise UserError(
            f"model.family={model_config.family!r}: the LM trainer trains decoder-only (gpt) "
            "models"
        )
    return GPT(model_config)
