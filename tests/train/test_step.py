"""train_step pieces: gradient accumulation, K steps per call, schedules, weight-decay mask,
losses."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from transformer_jax.errors import UserError
from transformer_jax.models.config import from_preset
from transformer_jax.models.gpt import GPT
from transformer_jax.tasks.lm import lm_loss_fn
from transformer_jax.train import losses, optim
from transformer_jax.train.state import TrainState
from transformer_jax.train.step import train_step, train_steps


def optim_config(**overrides):
    defaults = dict(
        optimizer="adamw", learning_rate=1e-2, schedule="cosine", warmup_steps=10,
        end_lr_ratio=0.1, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, grad_clip_norm=1.0,
    )
    return ml_collections.ConfigDict({**defaults, **overrides})


def test_gradient_accumulation_equals_one_big_batch():
    cfg = from_preset("gpt_tiny", vocab_size=64, num_layers=1, d_model=32, num_heads=2,
                      mlp_dim=64, max_len=16)
    model = GPT(cfg)
    params = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))["params"])
    optimizer, schedule = optim.make_optimizer(optim_config(), 100)
    state = TrainState(step=jnp.array(0), params=params, opt_state=optimizer.init(params))
    tokens = jax.random.randint(jax.random.key(1), (8, 17), 1, 64)
    # Uneven padding across micro-batches: the mean must still be over all real tokens.
    segment_ids = jnp.ones((8, 16), jnp.int32).at[:2, 5:].set(0)
    batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "segment_ids": segment_ids,
             "positions": jnp.broadcast_to(jnp.arange(16), (8, 16))}
    results = []
    for accum in (1, 4):
        step = jax.jit(functools.partial(train_step, loss_fn=lm_loss_fn(model),
                                         optimizer=optimizer, schedule=schedule,
                                         grad_accum_steps=accum))
        results.append(step(state, batch, jax.random.key(2)))
    (s1, m1), (s4, m4) = results
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s4.params), strict=False):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_k_steps_in_one_call_equal_k_calls():
    cfg = from_preset("gpt_tiny", vocab_size=64, num_layers=1, d_model=32, num_heads=2,
                      mlp_dim=64, max_len=16, dropout_rate=0.1)  # dropout: keys must match too
    model = GPT(cfg)
    params = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))["params"])
    optimizer, schedule = optim.make_optimizer(optim_config(warmup_steps=1), 100)
    kwargs = dict(loss_fn=lm_loss_fn(model), optimizer=optimizer, schedule=schedule)
    tokens = jax.random.randint(jax.random.key(1), (3, 4, 17), 1, 64)  # [K, B, T + 1]
    batches = {"inputs": tokens[..., :-1], "targets": tokens[..., 1:],
               "segment_ids": jnp.ones((3, 4, 16), jnp.int32),
               "positions": jnp.broadcast_to(jnp.arange(16), (3, 4, 16))}
    rng = jax.random.key(2)

    def fresh():
        return TrainState(step=jnp.array(0), params=params, opt_state=optimizer.init(params))

    one = jax.jit(functools.partial(train_step, **kwargs))
    state, losses_one = fresh(), []
    for k in range(3):
        state, metrics = one(state, jax.tree.map(lambda x, k=k: x[k], batches), rng)
        losses_one.append(metrics["loss"])
    merged, stacked = jax.jit(functools.partial(train_steps, **kwargs))(fresh(), batches, rng)
    assert stacked["loss"].shape == (3,) and int(merged.step) == 3
    np.testing.assert_allclose(stacked["loss"], losses_one, rtol=1e-5)
    assert not np.allclose(losses_one[0], losses_one[2])  # the steps did train
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(merged), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_schedules():
    cosine = optim.make_schedule(optim_config(), 110)
    assert float(cosine(0)) == 0.0
    np.testing.assert_allclose(float(cosine(5)), 5e-3, rtol=1e-5)
    np.testing.assert_allclose(float(cosine(10)), 1e-2, rtol=1e-5)
    np.testing.assert_allclose(float(cosine(60)), 1e-3 + 0.5 * 9e-3, rtol=1e-4)  # halfway
    np.testing.assert_allclose(float(cosine(110)), 1e-3, rtol=1e-4)
    linear = optim.make_schedule(optim_config(schedule="linear"), 110)
    np.testing.assert_allclose(float(linear(60)), 5.5e-3, rtol=1e-4)
    inv = optim.make_schedule(optim_config(schedule="inverse_sqrt"), 110)
    np.testing.assert_allclose(float(inv(10 + 30)), 1e-2 * np.sqrt(10 / 40), rtol=1e-4)


def test_weight_decay_mask_skips_norms_biases_embeddings():
    params = {"embedder": {"token_embed": {"embedding": 0}},
              "layer": {"query": {"kernel": 0, "bias": 0}, "norm": {"scale": 0, "bias": 0}}}
    mask = optim.decay_mask(params)
    assert mask["layer"]["query"]["kernel"] is True
    assert not any([mask["embedder"]["token_embed"]["embedding"], mask["layer"]["query"]["bias"],
                    mask["layer"]["norm"]["scale"], mask["layer"]["norm"]["bias"]])


def test_cross_entropy_matches_hand_computation():
    logits = jnp.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]])
    targets = jnp.array([[0, 2]])
    weights = jnp.array([[1.0, 0.0]])
    loss_sum, weight_sum = losses.cross_entropy(logits, targets, weights)
    expected = -np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1)))
    np.testing.assert_allclose(loss_sum, expected, rtol=1e-6)
    assert float(weight_sum) == 1.0
    smoothed, _ = losses.cross_entropy(logits, targets, weights, label_smoothing=0.1)
    log_p = jax.nn.log_softmax(logits[0, 0])
    hand = -(0.9 + 0.1 / 3) * log_p[0] - (0.1 / 3) * (log_p[1] + log_p[2])
    np.testing.assert_allclose(smoothed, hand, rtol=1e-6)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(UserError, match="optim.schedule"):
        optim.make_schedule(optim_config(schedule="cosine_restarts"), 10)
    with pytest.raises(UserError, match="optim.optimizer"):
        optim.make_optimizer(optim_config(optimizer="lion"), 10)
