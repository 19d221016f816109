"""A tiny encoder-decoder trained for a few seconds to reverse short sequences.

Random-init models decode degenerate repeats; a briefly trained one gives varied outputs
and EOS at different steps, which decoding tests need. Trained once per test session.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.train import losses

BOS, EOS, VOCAB = 2, 3, 24
CONFIG = from_preset("transformer_tiny", vocab_size=VOCAB, max_len=32, num_layers=1,
                     d_model=32, num_heads=4, mlp_dim=64, dropout_rate=0.0)


def reversal_batch(rng: np.random.Generator, batch: int, src_len: int = 8, tgt_len: int = 9):
    """Sources of 2..7 random tokens (+EOS, 0-padded) and their reversals as targets."""
    source = np.zeros((batch, src_len), np.int32)
    inputs = np.zeros((batch, tgt_len), np.int32)
    targets = np.zeros((batch, tgt_len), np.int32)
    for i in range(batch):
        n = rng.integers(2, src_len)
        tokens = rng.integers(4, VOCAB, n)
        source[i, : n + 1] = [*tokens, EOS]
        inputs[i, : n + 1] = [BOS, *tokens[::-1]]
        targets[i, : n + 1] = [*tokens[::-1], EOS]
    return source, inputs, targets


@functools.cache
def trained(steps: int = 150):
    """(model, params, validation sources [6, 8]) of the reversal model."""
    model = EncoderDecoder(CONFIG)
    rng = np.random.default_rng(0)
    src, inp, _ = reversal_batch(rng, 1)
    params = jax.jit(lambda: nn.unbox(model.init(jax.random.key(0), src, inp)["params"]))()
    optimizer = optax.adam(3e-3)

    @jax.jit
    def step(params, opt_state, src, inp, tgt):
        def loss(p):
            total, count = losses.cross_entropy(model.apply({"params": p}, src, inp), tgt,
                                                tgt > 0)
            return total / count
        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for _ in range(steps):
        params, opt_state = step(params, opt_state, *reversal_batch(rng, 64))
    return model, params, jnp.asarray(reversal_batch(np.random.default_rng(1), 6)[0])
