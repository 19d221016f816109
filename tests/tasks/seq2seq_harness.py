"""Drives the seq2seq task through `train_step` and a real EvalContext (no trainer needed)."""

import functools

import jax
import numpy as np

from transformer_jax.data import tokenizer as tokenizer_lib
from transformer_jax.models.config import model_config_from
from transformer_jax.sharding import batch_sharding, make_mesh
from transformer_jax.tasks.base import EvalContext
from transformer_jax.tasks.seq2seq import Seq2Seq
from transformer_jax.train import optim
from transformer_jax.train import state as state_lib
from transformer_jax.train.step import train_step


def train(config, steps: int, mesh_shape=(-1, 1, 1)):
    """(task, ctx, params, losses) after `steps` optimizer steps of the config's task."""
    model_config = model_config_from(config.model)
    task = Seq2Seq(config, model_config)
    tok = tokenizer_lib.load_or_train(task.tokenizer_source(), model_config.vocab_size,
                                      config.data.tokenizer_cache_dir or None)
    mesh = make_mesh(*mesh_shape)
    model = task.build_model(model_config)
    optimizer, schedule = optim.make_optimizer(config.optim, steps)
    with jax.set_mesh(mesh):
        init = functools.partial(task.init_params, model)
        _, shardings = state_lib.state_shardings(init, optimizer, mesh)
        state = state_lib.init_state(init, optimizer, jax.random.key(0), shardings)
        step = jax.jit(functools.partial(train_step, loss_fn=task.loss_fn(model),
                                         optimizer=optimizer, schedule=schedule),
                       donate_argnums=0)
        ctx = EvalContext(config, model_config, tok, mesh, batch_sharding(mesh),
                          local_batch=config.train.batch_size)
        batches = task.train_batches(tok, batch_size=config.train.batch_size, seed=0,
                                     process_index=0, process_count=1)
        losses = []
        for _ in range(steps):
            state, metrics = step(state, ctx.to_global(next(batches)), jax.random.key(1))
            losses.append(float(metrics["loss"]))
        batches.close()
    return task, ctx, state.params, np.asarray(losses)
