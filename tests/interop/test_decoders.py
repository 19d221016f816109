"""GPT-2 and Llama-style import/export against `transformers` (float32, random weights)."""

import jax
import numpy as np
import pytest

from tests.interop.conftest import hf_logits, tokens, torch, transformers
from transformer_jax import decoding, make_mesh
from transformer_jax.interop import api, models, placing

TOL = 1e-4


@pytest.fixture(scope="module")
def loaded(decoder):
    directory, _ = decoder
    return api.load_hf(directory)


def _params_equal(a, b) -> bool:
    flat_a, flat_b = placing.unrolled_host_params(a), placing.unrolled_host_params(b)
    pairs = zip(jax.tree.leaves(flat_a), jax.tree.leaves(flat_b), strict=True)
    return jax.tree.structure(flat_a) == jax.tree.structure(flat_b) and all(
        np.array_equal(x, y) for x, y in pairs)


def _import_weights(directory):
    """The params of a directory without tokenizer files (the weights only)."""
    checkpoint, family, arch = api.open_hf(directory)
    module, inputs = models.model_for(arch)
    return api.import_into(checkpoint, family, arch,
                           lambda rng: module.init(rng, **inputs)["params"],
                           make_mesh(1, 1, 1, devices=jax.devices()[:1]))


def _logits(model, params, ids, **kwargs):
    return np.asarray(jax.jit(model.apply)({"params": params}, ids, **kwargs))


def test_logits_match_transformers_with_padding(decoder, loaded):
    _, hf = decoder
    model, params, _ = loaded
    ids = tokens(hf.config.vocab_size)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0  # a right-padded row: its padded positions are not compared
    ours = _logits(model, params, ids, segment_ids=mask)
    theirs = hf_logits(hf, ids, mask)
    valid = mask.astype(bool)
    diff = np.abs(ours - theirs)[valid].max()
    print(f"{hf.config.model_type}: max abs logit difference {diff:.2e}")
    assert diff <= TOL


def test_greedy_decoding_matches_hf_generate(decoder, loaded):
    _, hf = decoder
    model, params, _ = loaded
    prompt = tokens(hf.config.vocab_size, (1, 8), seed=3)
    steps = 32
    with torch.no_grad():
        theirs = hf.generate(torch.tensor(prompt, dtype=torch.long), do_sample=False,
                             max_new_tokens=steps, min_new_tokens=steps, eos_token_id=None,
                             pad_token_id=0).numpy()[0, 8:]
    decoder_model = type(model)(model.config.replace(decode=True))
    ours = decoding.lm.generate(decoder_model, params, prompt, max_new_tokens=steps,
                                temperature=0.0, rng=jax.random.key(0))
    assert np.asarray(ours)[0].tolist() == theirs.tolist()


def test_scanned_import_equals_unrolled(llama):
    # (GPT-2's scanned import is checked on an FSDP mesh below.)
    directory, _ = llama
    _, scanned, _ = api.load_hf(directory, scan_layers=True)
    assert "layers" in scanned["decoder"] and "layers_0" not in scanned["decoder"]
    _, params, _ = api.load_hf(directory)
    assert _params_equal(scanned, params)


def test_round_trip_through_transformers(decoder, loaded, tmp_path):
    _, hf = decoder
    model, params, tok = loaded
    api.save_hf(model, params, tok, tmp_path / "out")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(back) is type(hf)
    ids = tokens(hf.config.vocab_size)
    assert np.abs(hf_logits(back, ids) - hf_logits(hf, ids)).max() <= 1e-6
    _, again, _ = api.load_hf(tmp_path / "out")
    assert _params_equal(again, params)  # export -> import is bitwise
    loaded_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert loaded_tok("def f(x):")["input_ids"] == tok.encode("def f(x):")


def test_sharded_index_onto_an_fsdp_mesh(gpt2, tmp_path):
    directory, hf = gpt2
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    mesh = make_mesh(data=1, fsdp=8, tensor=1)
    _, params, _ = api.load_hf(tmp_path, mesh=mesh, scan_layers=True)
    kernel = params["decoder"]["layers"]["block"]["mlp"]["wi"]["kernel"]  # [L, D, F]
    assert kernel.sharding.spec[1] == "fsdp"
    assert {s.data.shape for s in kernel.addressable_shards} == {(2, 4, 128)}
    _, reference, _ = api.load_hf(directory)
    assert _params_equal(params, reference)


def test_bf16_and_pytorch_bin_weights(gpt2, tmp_path):
    _, hf = gpt2
    bf16 = transformers.GPT2LMHeadModel(hf.config)
    bf16.load_state_dict(hf.state_dict())
    bf16.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    params = _import_weights(tmp_path / "bf16")
    wte = params["embedder"]["token_embed"]["embedding"]
    expected = hf.transformer.wte.weight.detach().to(torch.bfloat16).float().numpy()
    assert np.array_equal(np.asarray(wte), expected)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_bytes((tmp_path / "bf16" / "config.json").read_bytes())
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    from_bin = _import_weights(tmp_path / "bin")
    assert np.array_equal(np.asarray(from_bin["embedder"]["token_embed"]["embedding"]),
                          hf.transformer.wte.weight.detach().numpy())
