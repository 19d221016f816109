"""int8 weights: per-output-channel scales, bounded error, the dequantizing wrapper equals
dequantized params (also in the decoding loop), and a quantized run directory round-trips."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer_jax.compress import int8, store
from transformer_jax.decoding.lm import generate
from transformer_jax.errors import UserError
from transformer_jax.models.config import from_preset
from transformer_jax.models.gpt import GPT

CFG = from_preset("gpt_tiny", num_layers=2, d_model=32, num_heads=4, mlp_dim=64,
                  vocab_size=97, max_len=32, scan_layers=False, tie_embeddings=False)
PROMPT = jnp.arange(4, 12, dtype=jnp.int32)[None]  # [1, 8]


@pytest.fixture(scope="module")
def params():
    return nn.unbox(GPT(CFG).init(jax.random.key(0), PROMPT)["params"])


def test_scales_are_per_output_channel(params):
    q = int8.quantize(params)
    attn = q["decoder"]["layers_0"]["self_attention"]
    assert attn["query"]["kernel"]["int8"].dtype == jnp.int8
    assert attn["query"]["kernel"]["scale"].shape == (1, 4, 8)  # [D, N, H] -> per (N, H)
    assert attn["out"]["kernel"]["scale"].shape == (1, 1, 32)  # [N, H, D] -> per D
    assert q["embedder"]["token_embed"]["embedding"]["scale"].shape == (97, 1)  # per token
    assert q["lm_head"]["kernel"]["scale"].shape == (1, 97)
    assert attn["query"]["bias"].dtype == jnp.float32  # biases stay float
    w = params["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]
    back = int8.dequantize(q)["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]
    step = np.abs(np.asarray(w)).max(0, keepdims=True) / 127
    assert np.all(np.abs(back - w) <= step / 2 + 1e-7)  # round to nearest
    assert np.all(np.abs(q["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]["int8"]).max(0) == 127)


def test_groups_are_selectable(params):
    q = int8.quantize(params, ("dense",))
    assert q["embedder"]["token_embed"]["embedding"].dtype == jnp.float32
    assert q["lm_head"]["kernel"].dtype == jnp.float32
    assert int8.nbytes(q) < int8.nbytes(params)
    with pytest.raises(UserError, match="unknown"):
        int8.quantize(params, ("convs",))
    with pytest.raises(UserError, match="--quantize='int4'"):
        int8.check_scheme("int4")


def test_wrapper_matches_dequantized_params_and_decodes(params):
    q = int8.quantize(params)
    model = GPT(CFG)
    np.testing.assert_array_equal(
        model.apply({"params": int8.dequantize(q)}, PROMPT),
        int8.Dequantizing(model).apply({"params": int8.nest(q)}, PROMPT))
    decoder = GPT(CFG.replace(decode=True, deterministic=True))
    common = dict(max_new_tokens=6, rng=jax.random.key(0), temperature=0.0)
    np.testing.assert_array_equal(
        generate(decoder, int8.dequantize(q), PROMPT, **common),
        generate(int8.Dequantizing(decoder), int8.nest(q), PROMPT, **common))


def test_store_round_trip(params, tmp_path):
    q = int8.quantize(params)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(b"x")
    store.write(tmp_path / "q", q, scheme="int8", groups=int8.GROUPS, step=7,
                source=tmp_path / "run", metadata={"task": {"name": "lm"}})
    assert store.is_quantized_dir(tmp_path / "q")
    assert store.read_marker(tmp_path / "q")["step"] == 7
    back = store.read_weights(tmp_path / "q")
    jax.tree.map(np.testing.assert_array_equal, back, jax.device_get(q))
    with pytest.raises(UserError, match="exists"):
        store.write(tmp_path / "q", q, scheme="int8", groups=int8.GROUPS, step=7,
                    source=tmp_path / "run", metadata={})
