"""transformer_jax: GPT, BERT and encoder-decoder Transformers in JAX/Flax.

The public API (internals may move; these names stay):

    import transformer_jax as tj
    config = tj.from_preset("gpt_tiny", vocab_size=512)
    model = tj.GPT(config)
    mesh = tj.make_mesh(data=-1)
    state, shardings = tj.create_sharded_state(model, optax.adamw(1e-3), mesh, rng, seq_len)
"""

from transformer_jax.decode import generate, sample_logits
from transformer_jax.errors import UserError
from transformer_jax.models.build import build_model
from transformer_jax.models.config import PRESETS, ModelConfig, from_preset
from transformer_jax.models.gpt import GPT
from transformer_jax.sharding import LOGICAL_AXIS_RULES, batch_sharding, make_mesh
from transformer_jax.train.losses import cross_entropy
from transformer_jax.train.state import (
    TrainState,
    create_sharded_state,
    init_state,
    state_shardings,
)
from transformer_jax.train.step import eval_step, lm_loss_fn, train_step, train_steps

__all__ = [
    "GPT",
    "LOGICAL_AXIS_RULES",
    "PRESETS",
    "ModelConfig",
    "TrainState",
    "UserError",
    "batch_sharding",
    "build_model",
    "create_sharded_state",
    "cross_entropy",
    "eval_step",
    "from_preset",
    "generate",
    "init_state",
    "lm_loss_fn",
    "make_mesh",
    "sample_logits",
    "state_shardings",
    "train_step",
    "train_steps",
]
