"""BERT fine-tuning models: published parameter counts and output shapes."""

import jax
import jax.numpy as jnp

from tests.models.test_presets import _count
from transformer_jax.models.bert import (
    BertEncoder,
    BertForPretraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from transformer_jax.models.config import from_preset

TOKENS = jnp.ones((1, 8), jnp.int32)


def test_published_counts():
    large = from_preset("bert_large")
    assert _count(BertEncoder(large), TOKENS) == 335_141_888  # BERT-large, with the pooler
    assert _count(BertForPretraining(large), TOKENS) == 336_226_108
    # Hugging Face's BertForSequenceClassification(bert-base-uncased, num_labels=2).
    assert _count(BertForSequenceClassification(from_preset("bert_base"), 2), TOKENS) == (
        109_483_778)


def test_head_shapes():
    config = from_preset("bert_tiny", vocab_size=300, num_layers=1, d_model=32, num_heads=2,
                         mlp_dim=64, max_len=16, deterministic=True)
    tokens = jnp.array([[4, 9, 10, 5, 0, 0], [4, 11, 5, 12, 13, 5]])
    types = jnp.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    for model, shapes in ((BertForSequenceClassification(config, 5), (2, 5)),
                          (BertForTokenClassification(config, 7), (2, 6, 7)),
                          (BertForQuestionAnswering(config), ((2, 6), (2, 6)))):
        out = jax.eval_shape(lambda m=model: m.apply(m.init(jax.random.key(0), tokens, types),
                                                     tokens, types))
        assert jax.tree.map(lambda x: x.shape, out) == shapes
