"""Fixtures for BERT task tests: tiny configs, tokenizers with [CLS]/[SEP]/[MASK], training."""

import functools
import pathlib
import sysconfig

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

from experiments.configs import bert_stdlib
from transformer_jax import sharding
from transformer_jax.data import bert_pretrain, tokenizer
from transformer_jax.models.config import from_preset
from transformer_jax.placement import Placement
from transformer_jax.run.evaluation import Evaluator
from transformer_jax.train.state import TrainState
from transformer_jax.train.step import train_step

STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])


def tiny_config(task: str, **data):
    """The `:test` BERT config for `task`, with a smaller sequence length."""
    c = bert_stdlib.bert_config(task, "test", **data)
    c.data.seq_len = 32
    c.model.max_len = 32
    return c


def model_config(c):
    overrides = {k: v for k, v in c.model.items() if k != "preset" and v is not None}
    return from_preset(c.model.preset, **overrides)


def make_tokenizer(task) -> tokenizer.Tokenizer:
    """A tokenizer of the task's vocabulary size: its tokenizer source, then some stdlib code
    (so that small test corpora still have enough text for the vocabulary)."""
    source = task.tokenizer_source()
    texts = [source[i] for i in range(len(source))]
    texts += [(STDLIB / name).read_text() for name in ("string.py", "textwrap.py", "csv.py")]
    return tokenizer.train_tokenizer(texts,
                                     task.model_config.vocab_size,
                                     max_chars=100_000,
                                     user_defined_symbols=bert_pretrain.SPECIAL_TOKENS)


def train(task, tok, steps: int, seed: int = 0, params=None, learning_rate: float = 3e-3):
    """`steps` of `train_step` on the task's batches; returns the params and the losses."""
    model = task.build_model(task.model_config)
    if params is None:
        # Jitted: an eager init dispatches (and compiles) every op on its own, 2x slower.
        params = nn.unbox(jax.jit(lambda rng: task.init_params(model, rng))(
            jax.random.key(seed)))
    optimizer = optax.adam(learning_rate)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                       opt_state=optimizer.init(params))
    step = jax.jit(functools.partial(train_step, loss_fn=task.loss_fn(model),
                                     optimizer=optimizer, schedule=lambda s: learning_rate))
    batches = task.train_batches(tok, batch_size=8, seed=seed, process_index=0,
                                 process_count=1)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, next(batches), jax.random.key(1))
        losses.append(float(metrics["loss"]))
    batches.close()
    return state.params, losses


def one_process_placement(rows: int = 8) -> Placement:
    """Batches of `rows` rows on all local devices (one process)."""
    return Placement(sharding.make_mesh(data=-1, fsdp=1, tensor=1), rows)


@pytest.fixture
def placement() -> Placement:
    return one_process_placement()


@pytest.fixture
def evaluate(placement):
    """(task, tokenizer, params) -> the task's metrics as the trainer computes them, on at
    most `config.train.eval_batches` validation batches of 8 rows."""
    return lambda task, tok, params: Evaluator(task, placement, tok)(
        params, "validation", task.config.train.eval_batches)
