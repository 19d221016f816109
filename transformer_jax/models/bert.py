"""BERT: a bidirectional encoder with token types, a pooler and MLM + NSP pretraining heads.

Shapes: B batch, T length, D d_model, V vocab.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer_jax.models import attention
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.embedder import Embedder
from transformer_jax.models.heads import ClassifierHead, MlmHead, Pooler
from transformer_jax.models.stack import Stack


class BertEncoder(nn.Module):
    """Embeddings + bidirectional encoder stack + pooler.

    `bert_base` has 109,482,240 parameters (tests/models/test_presets.py).
    """

    config: ModelConfig

    def setup(self) -> None:
        self.embedder = Embedder(self.config)
        self.encoder = Stack(self.config, self.config.num_layers)
        self.pooler = Pooler(self.config)

    def __call__(
        self,
        tokens: jax.Array,
        token_types: jax.Array | None = None,
        valid: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Encodes a batch.

        Args:
          tokens: [B, T] ids.
          token_types: [B, T] segment (sentence A/B) ids; default all 0.
          valid: [B, T] True for real tokens; default tokens != config.pad_id.

        Returns:
          (hidden [B, T, D], pooled [B, D]).
        """
        b, t = tokens.shape
        valid = tokens != self.config.pad_id if valid is None else valid
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        x = self.embedder(tokens, positions, token_types)
        hidden = self.encoder(x, attention.padding_mask(valid, valid), positions)
        return hidden, self.pooler(hidden)

    def attend(self, hidden: jax.Array) -> jax.Array:
        return self.embedder.attend(hidden)


class BertForPretraining(nn.Module):
    """`BertEncoder` + MLM head (tied decoder) + NSP head: 110,106,428 params for bert_base."""

    config: ModelConfig

    @nn.compact
    def __call__(
        self, tokens: jax.Array, token_types: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """[B, T] -> (MLM logits [B, T, V], NSP logits [B, 2])."""
        bert = BertEncoder(self.config, name="bert")
        hidden, pooled = bert(tokens, token_types)
        mlm = MlmHead(self.config, name="mlm")(hidden, bert.embedder)
        nsp = ClassifierHead(self.config, 2, name="nsp")(pooled)
        return mlm, nsp


class BertForSequenceClassification(nn.Module):
    """`BertEncoder` + a linear classifier on the pooled [CLS] output.

    Attributes:
      config: the model config.
      num_classes: C.
    """

    config: ModelConfig
    num_classes: int

    @nn.compact
    def __call__(self, tokens: jax.Array, token_types: jax.Array | None = None) -> jax.Array:
        """[B, T] ids (and token types) -> [B, C] float32 logits."""
        _, pooled = BertEncoder(self.config, name="bert")(tokens, token_types)
        return ClassifierHead(self.config, self.num_classes, name="classifier")(pooled)


class BertForTokenClassification(nn.Module):
    """`BertEncoder` + a linear tagger on every hidden state (NER-style tagging).

    Attributes:
      config: the model config.
      num_classes: C, the number of tags.
    """

    config: ModelConfig
    num_classes: int

    @nn.compact
    def __call__(self, tokens: jax.Array, token_types: jax.Array | None = None) -> jax.Array:
        """[B, T] ids (and token types) -> [B, T, C] float32 logits."""
        hidden, _ = BertEncoder(self.config, name="bert")(tokens, token_types)
        return ClassifierHead(self.config, self.num_classes, name="tagger")(hidden)


class BertForQuestionAnswering(nn.Module):
    """`BertEncoder` + start/end span logits over every position (extractive QA)."""

    config: ModelConfig

    @nn.compact
    def __call__(
        self, tokens: jax.Array, token_types: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """[B, T] ids (and token types) -> (start logits [B, T], end logits [B, T]) float32."""
        hidden, _ = BertEncoder(self.config, name="bert")(tokens, token_types)
        spans = ClassifierHead(self.config, 2, name="span")(hidden)  # [B, T, 2]
        return spans[..., 0], spans[..., 1]
