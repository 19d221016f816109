"""The notebook workflow, using only the public API and no absl flags."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import transformer_jax as tj


def test_notebook_workflow():
    config = tj.from_preset("gpt_tiny", vocab_size=128, num_layers=2, d_model=64,
                            num_heads=4, mlp_dim=128, max_len=64)
    model = tj.GPT(config)
    mesh = tj.make_mesh(data=2, fsdp=2, tensor=2)
    optimizer = optax.adamw(1e-2)
    state, shardings = tj.create_sharded_state(model, optimizer, mesh, jax.random.key(0), 32)

    tokens = jax.random.randint(jax.random.key(1), (8, 33), 1, 128)
    batch = {
        "inputs": tokens[:, :-1],
        "targets": tokens[:, 1:],
        "segment_ids": jnp.ones((8, 32), jnp.int32),
        "positions": jnp.broadcast_to(jnp.arange(32), (8, 32)),
    }
    logits = model.apply({"params": state.params}, batch["inputs"])
    assert logits.shape == (8, 32, 128)

    step = jax.jit(
        functools.partial(tj.train_step, loss_fn=tj.lm_loss_fn(model), optimizer=optimizer,
                          schedule=lambda _: 1e-2),
        in_shardings=(shardings, tj.batch_sharding(mesh), None),
        out_shardings=(shardings, None),
        donate_argnums=0,
    )
    losses = []
    for _ in range(4):  # overfit one batch: the loss must fall
        state, metrics = step(state, batch, jax.random.key(2))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]
    assert int(state.step) == 4

    decoder = tj.GPT(config.replace(decode=True, deterministic=True))
    out = tj.generate(decoder, state.params, tokens[:2, :5], max_new_tokens=7, temperature=0.0)
    assert out.shape == (2, 7)
    assert np.all((np.asarray(out) >= 0) & (np.asarray(out) < 128))
