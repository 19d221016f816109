"""Presets reproduce the published parameter counts exactly (shapes only, no allocation)."""

import math

import jax
import jax.numpy as jnp
import pytest

from transformer_jax.errors import UserError
from transformer_jax.models.bert import BertEncoder, BertForPretraining
from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.models.gpt import GPT


def count_params(preset: str, **overrides) -> int:
    model = GPT(from_preset(preset, **overrides))
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


def _count(module, *inputs) -> int:
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs)["params"])
    return sum(math.prod(x.value.shape if hasattr(x, "value") else x.shape)
               for x in jax.tree.leaves(shapes, is_leaf=lambda x: hasattr(x, "value")))


def test_bert_base_parameter_counts():
    config = from_preset("bert_base")
    tokens = jnp.ones((1, 8), jnp.int32)
    assert _count(BertEncoder(config), tokens) == 109_482_240
    assert _count(BertForPretraining(config), tokens) == 110_106_428


@pytest.mark.parametrize("preset, published", [("transformer_base", 65e6),
                                               ("transformer_big", 213e6)])
def test_transformer_sizes_are_near_the_paper(preset, published):
    """With a 37k shared vocabulary the paper reports 65M / 213M (rounded, biases unstated)."""
    n = _count(EncoderDecoder(from_preset(preset)), jnp.ones((1, 8), jnp.int32),
               jnp.ones((1, 8), jnp.int32))
    assert abs(n - published) / published < 0.03
