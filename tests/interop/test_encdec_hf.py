"""Parity of the encoder-decoder families (T5, BART, Marian) with Hugging Face on PyTorch.

Random-init HF models from small configs, every parameter perturbed (norms off 1, biases
off 0), sources padded: the project's logits match to 1e-4 in float32, cached greedy
decoding gives HF's `generate` tokens, and exported tensors load strictly into a fresh HF
model with the same logits.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402

from tests.interop.encdec_helpers import hf_tensors, import_tree, perturb  # noqa: E402
from transformer_jax.decoding import seq2seq as seq2seq_decoding  # noqa: E402
from transformer_jax.interop import bart, marian, t5  # noqa: E402
from transformer_jax.interop.family import UnsupportedConfig  # noqa: E402
from transformer_jax.models.encdec import EncoderDecoder  # noqa: E402

VOCAB = 120
TOL = 1e-4
DECODE_STEPS = 32


def _t5(gated: bool):
    cfg = transformers.T5Config(
        vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu" if gated else "relu",
        tie_word_embeddings=not gated, dropout_rate=0.0, decoder_start_token_id=0,
    )
    torch.manual_seed(1 if gated else 0)
    model = transformers.T5ForConditionalGeneration(cfg).eval()
    hf_config = cfg.to_dict()
    if gated:
        # transformers 5 always ties T5's lm_head (T5Config forces tie_word_embeddings);
        # Flan-T5 checkpoints have their own: untie it as those files do.
        model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 48) * 0.3)
        hf_config["tie_word_embeddings"] = False
    perturb(model, seed=2)
    return model, hf_config


def _bart():
    cfg = transformers.BartConfig(
        vocab_size=VOCAB, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_position_embeddings=64, dropout=0.0, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
    )
    torch.manual_seed(3)
    model = transformers.BartForConditionalGeneration(cfg).eval()
    perturb(model, seed=4)
    return model, cfg.to_dict()


def _marian():
    cfg = transformers.MarianConfig(
        vocab_size=VOCAB, d_model=48, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_ffn_dim=96, max_position_embeddings=64, dropout=0.0, pad_token_id=VOCAB - 1,
        eos_token_id=0, decoder_start_token_id=VOCAB - 1, forced_eos_token_id=None,
        activation_function="swish", scale_embedding=True,
    )
    torch.manual_seed(5)
    model = transformers.MarianMTModel(cfg).eval()
    perturb(model, seed=6)
    return model, cfg.to_dict()


FAMILIES = {
    "t5_v1_0": (t5, lambda: _t5(gated=False)),
    "t5_v1_1": (t5, lambda: _t5(gated=True)),
    "bart": (bart, _bart),
    "marian": (marian, _marian),
}


_CASES: dict = {}


def _case(name: str):
    """(name, family module, HF model, its config dict, Architecture, imported params), built
    once per module."""
    if name not in _CASES:
        family, build = FAMILIES[name]
        model, hf_config = build()
        arch, params = import_tree(family, hf_config, hf_tensors(model))
        _CASES[name] = (name, family, model, hf_config, arch, params)
    return _CASES[name]


def _inputs(arch):
    """A padded batch: sources [2, 9] (row 1 ends in 3 pads), decoder inputs [2, 6]."""
    pad = arch.model.pad_id
    rng = np.random.default_rng(0)
    real = [i for i in range(3, VOCAB - 1) if i != pad]
    source = rng.choice(real, size=(2, 9)).astype(np.int32)
    source[1, 6:] = pad
    target = rng.choice(real, size=(2, 6)).astype(np.int32)
    target[:, 0] = arch.model.decoder_start_id
    target[0, 3] = 0  # id 0 is a real token here (the pad id in T5 only)
    return source, target


def _hf_logits(model, source, target, pad):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(source, dtype=torch.long),
                    attention_mask=torch.tensor(source != pad, dtype=torch.long),
                    decoder_input_ids=torch.tensor(target, dtype=torch.long))
    return out.logits.numpy()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_logits_match_hugging_face(name):
    name, _, model, _, arch, params = _case(name)
    source, target = _inputs(arch)
    ours = EncoderDecoder(arch.model).apply({"params": params}, jnp.asarray(source),
                                            jnp.asarray(target))
    diff = np.abs(np.asarray(ours) - _hf_logits(model, source, target, arch.model.pad_id))
    print(f"{name}: max abs logit difference {diff.max():.2e}")
    assert diff.max() <= TOL


@pytest.mark.parametrize("name", ["t5_v1_1", "marian"])
def test_greedy_decoding_matches_hugging_face_generate(name):
    """Cached greedy decoding (KV cache, cross cache, relative bias rows) = HF `generate`."""
    name, _, model, _, arch, params = _case(name)
    source, _ = _inputs(arch)
    model.generation_config.eos_token_id = None  # run all DECODE_STEPS steps
    with torch.no_grad():
        hf = model.generate(
            input_ids=torch.tensor(source, dtype=torch.long),
            attention_mask=torch.tensor(source != arch.model.pad_id, dtype=torch.long),
            do_sample=False, num_beams=1, max_new_tokens=DECODE_STEPS,
            min_new_tokens=DECODE_STEPS, eos_token_id=None, forced_eos_token_id=None,
            bad_words_ids=None,
        ).numpy()
    assert hf.shape[1] == DECODE_STEPS + 1 and (hf[:, 0] == arch.model.decoder_start_id).all()
    # Random models often repeat a token here; test_cached_decoder_steps_give_hugging_face_
    # logits checks every cached step's logits on a random target.
    decoder = EncoderDecoder(arch.model.replace(decode=True, deterministic=True))
    # eos_id VOCAB is never chosen, so no row stops; the last of M + 1 steps is forced.
    ours = seq2seq_decoding.sample(decoder, params, jnp.asarray(source),
                                   max_decode_len=DECODE_STEPS + 1,
                                   bos_id=arch.model.decoder_start_id, eos_id=VOCAB)
    np.testing.assert_array_equal(np.asarray(ours)[:, :DECODE_STEPS], hf[:, 1:])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_export_loads_strictly_into_hugging_face(name):
    """export(import(HF)) gives HF's tensors bitwise, all of them, and a fresh HF model built
    from the exported config.json loads them strictly and gives the same logits."""
    name, family, model, _, arch, params = _case(name)
    hf_config, tensors = family.export(arch, params)
    exported = dict(tensors)
    original = hf_tensors(model)
    assert sorted(exported) == sorted(original)
    for key, value in exported.items():
        np.testing.assert_array_equal(value, original[key], err_msg=key)
    fields = {k: v for k, v in hf_config.items() if k not in ("model_type", "architectures")}
    config = transformers.CONFIG_MAPPING[hf_config["model_type"]](**fields)
    fresh = getattr(transformers, hf_config["architectures"][0])(config).eval()
    if not hf_config.get("tie_word_embeddings", True):
        fresh.lm_head.weight = torch.nn.Parameter(torch.zeros(VOCAB, config.d_model))
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()}, strict=True)
    source, target = _inputs(arch)
    pad = arch.model.pad_id
    np.testing.assert_array_equal(_hf_logits(fresh, source, target, pad),
                                  _hf_logits(model, source, target, pad))


@pytest.mark.parametrize("family, hf_config, field", [
    (t5, {"feed_forward_proj": "gated-relu"}, "feed_forward_proj"),
    (t5, {"is_decoder": True}, "is_decoder"),
    (bart, {"add_bias_logits": True}, "add_bias_logits"),
    (bart, {"normalize_before": True}, "normalize_before"),
    (bart, {"add_final_layer_norm": True}, "add_final_layer_norm"),
    (bart, {"normalize_embedding": False}, "normalize_embedding"),
    (bart, {"activation_function": "gelu_fast"}, "activation_function"),
    (bart, {"decoder_ffn_dim": 64}, "decoder_ffn_dim"),
    (bart, {"tie_word_embeddings": False}, "tie_word_embeddings"),
    (marian, {"share_encoder_decoder_embeddings": False}, "share_encoder_decoder_embeddings"),
    (marian, {"decoder_vocab_size": 50}, "decoder_vocab_size"),
])
def test_unsupported_configs_are_refused_with_one_line(family, hf_config, field):
    base = {"vocab_size": VOCAB, "d_model": 48, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4,
            "encoder_ffn_dim": 96, "decoder_ffn_dim": 96, "pad_token_id": 1}
    family.architecture({**base, "model_type": family.model_types[0]})  # the base is fine
    with pytest.raises(UnsupportedConfig) as error:
        family.architecture({**base, **hf_config})
    message = str(error.value)
    assert field in message and "\n" not in message, message


def test_two_pass_layernorm_matches_torch_where_the_fast_form_does_not():
    """At mean/std = 100 Flax's fast variance is visibly off torch; norm_two_pass is not."""
    from transformer_jax.models import layers
    from transformer_jax.models.config import ModelConfig

    x = 100.0 + np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    expected = torch.nn.functional.layer_norm(torch.from_numpy(x), (64,), eps=1e-5).numpy()
    errors = {}
    for two_pass in (False, True):
        norm = layers.norm(ModelConfig(norm_eps=1e-5, norm_two_pass=two_pass), name="n")
        out = norm.apply(norm.init(__import__("jax").random.key(0), x), x)
        errors[two_pass] = float(np.abs(np.asarray(out) - expected).max())
    print(f"max |flax - torch| LayerNorm at mean/std=100: fast {errors[False]:.1e}, "
          f"two-pass {errors[True]:.1e}")
    assert errors[True] <= 5e-5 and errors[False] > 1e-3  # float32 rounding of a mean of 100


def test_paper_sinusoid_is_marians_table():
    from transformer_jax.models import position

    _, _, model, _, arch, _ = _case("marian")
    table = model.model.encoder.embed_positions.weight.detach().numpy()  # [P, D]
    ours = position.sinusoidal(jnp.arange(table.shape[0])[None], arch.model.d_model,
                               timescales="paper")[0]
    np.testing.assert_allclose(np.asarray(ours), table, atol=2e-5)
    t2t = position.sinusoidal(jnp.arange(table.shape[0])[None], arch.model.d_model)[0]
    assert np.abs(np.asarray(t2t) - table).max() > 0.1  # the t2t timescales are not Marian's


@pytest.mark.parametrize("name", ["t5_v1_1"])
def test_scanned_layers_give_the_unrolled_logits(name):
    """The relative bias and the decoder embedder work the same under nn.scan."""
    import jax

    _, _, _, _, arch, params = _case(name)
    cfg = arch.model
    scanned = dict(params)
    for stack, num in (("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers)):
        rest = {k: v for k, v in params[stack].items() if not k.startswith("layers_")}
        blocks = [params[stack][f"layers_{i}"] for i in range(num)]
        scanned[stack] = {**rest, "layers": {"block": jax.tree.map(
            lambda *xs: np.stack(xs), *blocks)}}
    source, target = _inputs(arch)
    unrolled = EncoderDecoder(cfg).apply({"params": params}, source, target)
    stacked = EncoderDecoder(cfg.replace(scan_layers=True)).apply({"params": scanned}, source,
                                                                 target)
    np.testing.assert_allclose(np.asarray(stacked), np.asarray(unrolled), atol=1e-5)


@pytest.mark.parametrize("name", ["t5_v1_0", "marian"])
def test_cached_decoder_steps_give_hugging_face_logits(name):
    """Teacher-forced, one token at a time through both caches: every step's logits are HF's
    full-forward logits (the cache, its masks and the bias rows of each position)."""
    import jax

    name, _, model, _, arch, params = _case(name)
    source, _ = _inputs(arch)
    steps = DECODE_STEPS + 1
    target = np.random.default_rng(1).integers(0, VOCAB, size=(2, steps)).astype(np.int32)
    target[:, 0] = arch.model.decoder_start_id
    expected = _hf_logits(model, source, target, arch.model.pad_id)  # [B, T, V]
    decoder = EncoderDecoder(arch.model.replace(decode=True, deterministic=True))
    src = jnp.asarray(source)
    encoded = decoder.apply({"params": params}, src, method=EncoderDecoder.encode)
    cache = seq2seq_decoding.empty_cache(decoder, src, steps)
    first = jax.jit(lambda c, tok: seq2seq_decoding.decode_step(decoder, params, c, encoded,
                                                                src, tok, 0))
    later = jax.jit(lambda c, tok, i: seq2seq_decoding.decode_step(decoder, params, c, None,
                                                                   src, tok, i))
    worst = 0.0
    for i in range(steps):
        tokens = jnp.asarray(target[:, i])
        logits, cache = first(cache, tokens) if i == 0 else later(cache, tokens, i)
        worst = max(worst, float(np.abs(np.asarray(logits) - expected[:, i]).max()))
    print(f"{name}: cached decoding, max abs logit difference over {steps} steps {worst:.2e}")
    assert worst <= TOL
