"""transformer_jax: GPT, BERT and encoder-decoder Transformers in JAX/Flax.

The public API (internals may move; these names stay):

    import transformer_jax as tj
    config = tj.from_preset("gpt_tiny", vocab_size=512)
    model = tj.GPT(config)
    mesh = tj.make_mesh(data=-1)
    state, shardings = tj.create_sharded_state(model, optax.adamw(1e-3), mesh, rng, seq_len)

The layers (docs/architecture.md): `models/` (layers and the three families), `data/`,
`train/` (the task-agnostic step library), `decoding/`, `tasks/`, then `run/` (the trainer).
"""

from transformer_jax.decoding.beam_search import beam_search
from transformer_jax.decoding.lm import generate
from transformer_jax.decoding.sampling import sample_logits
from transformer_jax.errors import UserError
from transformer_jax.interop.api import load_hf, save_hf
from transformer_jax.models.bert import (
    BertEncoder,
    BertForPretraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from transformer_jax.models.config import PRESETS, ModelConfig, from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.models.gpt import GPT
from transformer_jax.placement import Placement
from transformer_jax.sharding import LOGICAL_AXIS_RULES, batch_sharding, make_mesh
from transformer_jax.tasks.lm import eval_step, lm_loss_fn
from transformer_jax.train.losses import cross_entropy
from transformer_jax.train.state import (
    TrainState,
    create_sharded_state,
    init_state,
    state_shardings,
)
from transformer_jax.train.step import train_step, train_steps

__all__ = [
    "GPT",
    "LOGICAL_AXIS_RULES",
    "PRESETS",
    "BertEncoder",
    "BertForPretraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "EncoderDecoder",
    "ModelConfig",
    "Placement",
    "TrainState",
    "UserError",
    "batch_sharding",
    "beam_search",
    "create_sharded_state",
    "cross_entropy",
    "eval_step",
    "from_preset",
    "generate",
    "init_state",
    "lm_loss_fn",
    "load_hf",
    "make_mesh",
    "sample_logits",
    "save_hf",
    "state_shardings",
    "train_step",
    "train_steps",
]
