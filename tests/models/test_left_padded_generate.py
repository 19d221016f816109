"""Left-padded batched prompts: each row of a batch decodes as it does alone."""

import jax
import jax.numpy as jnp
import numpy as np

from transformer_jax.decoding.lm import generate
from transformer_jax.models.config import ModelConfig
from transformer_jax.models.gpt import GPT


def test_left_padded_rows_decode_as_they_do_alone():
    cfg = ModelConfig(vocab_size=64, max_len=32, num_layers=2, d_model=32, num_heads=2,
                      mlp_dim=64, scan_layers=False, init_std=0.5)
    params = GPT(cfg).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    model = GPT(cfg.replace(decode=True, deterministic=True))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, 64, size=n).tolist() for n in (2, 5, 7)]
    width = max(map(len, prompts))
    batch = np.full((len(prompts), width), 7, np.int32)  # pad id 7: also a real token
    mask = np.zeros(batch.shape, bool)
    for row, prompt in enumerate(prompts):
        batch[row, width - len(prompt):] = prompt
        mask[row, width - len(prompt):] = True
    together = generate(model, params, jnp.asarray(batch), max_new_tokens=12, temperature=0.0,
                        prompt_mask=jnp.asarray(mask))
    assert len(np.unique(np.asarray(together))) > 6  # the outputs depend on the context
    for row, prompt in enumerate(prompts):
        alone = generate(model, params, jnp.asarray([prompt]), max_new_tokens=12,
                         temperature=0.0)
        np.testing.assert_array_equal(np.asarray(together)[row], np.asarray(alone)[0])
    # Without the mask the padding is read as tokens and the short rows change.
    unmasked = generate(model, params, jnp.asarray(batch), max_new_tokens=12, temperature=0.0)
    assert not np.array_equal(np.asarray(unmasked), np.asarray(together))
