"""Presets reproduce the published parameter counts exactly (shapes only, no allocation)."""

import math

import jax
import jax.numpy as jnp
import pytest

from transformer_jax.errors import UserError
from transformer_jax.models.build import build_model
from transformer_jax.models.config import from_preset


def count_params(preset: str, **overrides) -> int:
    model = build_model(from_preset(preset, **overrides))
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    )
    return sum(math.prod(x.value.shape if hasattr(x, "value") else x.shape)
               for x in jax.tree.leaves(shapes, is_leaf=lambda x: hasattr(x, "value")))


@pytest.mark.parametrize(
    "preset, expected",
    [("gpt2_small", 124_439_808), ("gpt2_medium", 354_823_168)],
)
def test_gpt2_parameter_counts(preset, expected):
    assert count_params(preset) == expected


def test_scan_and_unrolled_have_same_count():
    assert count_params("gpt_tiny", scan_layers=True) == count_params("gpt_tiny", scan_layers=False)


def test_unknown_preset_and_key_are_clear_errors():
    with pytest.raises(UserError, match="gpt3_huge"):
        from_preset("gpt3_huge")
    with pytest.raises(UserError, match="d_modle"):
        from_preset("gpt_tiny", d_modle=3)
    with pytest.raises(UserError, match="num_kv_heads"):
        from_preset("gpt_tiny", num_kv_heads=3)
