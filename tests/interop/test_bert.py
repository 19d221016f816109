"""BERT/RoBERTa interop (interop/bert.py) against `transformers` on PyTorch, random-init models.

Every head's logits at real (unpadded) positions match Hugging Face to <= 1e-4 in float32,
with LayerNorm weights and all biases perturbed away from 1/0 so a wrong mapping shows; an
export loads back into `transformers` with no missing or unexpected tensor and the same
logits, and re-imports bitwise; each unsupported config field is refused with one line.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import flax.linen as nn  # noqa: E402
from flax import traverse_util  # noqa: E402

from transformer_jax.errors import UserError  # noqa: E402
from transformer_jax.interop import bert as hf_bert  # noqa: E402
from transformer_jax.interop.family import Architecture, UnsupportedConfig  # noqa: E402
from transformer_jax.models import bert as model_lib  # noqa: E402
from transformer_jax.models.config import from_preset  # noqa: E402

TOLERANCE = 1e-4
# One small config for every class: D 32, 2 layers, 4 heads, F 64, V 99.
SIZES = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=24)
B, T, PADDED = 2, 10, 3  # row 1 ends in PADDED pad tokens


def hf_model(hf_class: str, **config):
    """A random-init `transformers` model in eval mode, biases and LayerNorms perturbed."""
    model_type = "roberta" if hf_class.startswith("Roberta") else "bert"
    hf_config = transformers.AutoConfig.for_model(model_type, **{**SIZES, **config})
    torch.manual_seed(0)
    model = getattr(transformers, hf_class)(hf_config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                p.add_(0.5 * torch.randn_like(p))
    return model


def inputs(roberta: bool) -> dict[str, np.ndarray]:
    """[B, T] ids, token types and the real-token mask; RoBERTa: <s> is id 0, pad id 1."""
    rng = np.random.default_rng(1)
    pad = 1 if roberta else 0
    tokens = rng.integers(2, SIZES["vocab_size"], (B, T)).astype(np.int32)
    tokens[:, 0] = 0 if roberta else 2  # <s> (id 0!) / a [CLS]-like id
    tokens[1, T - PADDED:] = pad
    types = np.zeros((B, T), np.int32)
    if not roberta:
        types[0, T // 2:] = 1
        types[1, 4:T - PADDED] = 1
    return {"tokens": tokens, "types": types, "valid": tokens != pad}


def hf_outputs(model, x) -> tuple[np.ndarray, ...]:
    """The class's logits as numpy: MLM (+ NSP), classes, tags, or start/end."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor(x["tokens"], dtype=torch.long),
                    attention_mask=torch.tensor(x["valid"], dtype=torch.long),
                    token_type_ids=torch.tensor(x["types"], dtype=torch.long))
    keys = [k for k in ("prediction_logits", "seq_relationship_logits", "logits",
                        "start_logits", "end_logits", "last_hidden_state", "pooler_output")
            if getattr(out, k, None) is not None]
    return tuple(getattr(out, k).numpy() for k in keys)


def saved(model, path) -> tuple[dict, dict[str, np.ndarray]]:
    """What `save_pretrained` writes: config.json and model.safetensors' tensors."""
    model.save_pretrained(path)
    return (json.loads((path / "config.json").read_text()),
            safetensors_numpy.load_file(str(path / "model.safetensors")))


def imported(hf_config: dict, tensors: dict[str, np.ndarray]):
    """(Architecture, unrolled params) through the family's import, as a nested dict."""
    arch = hf_bert.architecture(hf_config)
    params = {}
    for path, thunk in hf_bert.import_params(hf_config, arch, tensors.__getitem__):
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = thunk()
    return arch, params


def project_outputs(arch, params, x) -> tuple[np.ndarray, ...]:
    """The project's model outputs, after checking `params` has exactly its leaves.

    Applied eagerly: every head reuses the same small op shapes, which is faster here than
    compiling each model whole.
    """
    model = hf_bert._model_for(dataclasses.replace(
        arch, model=arch.model.replace(deterministic=True)))
    if arch.hf_class.endswith("Model"):  # the encoder alone: (hidden, pooled)
        model, params = model_lib.BertEncoder(model.config), params["bert"]
    tokens, types = jnp.asarray(x["tokens"]), jnp.asarray(x["types"])
    expected = jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]
    shapes = traverse_util.flatten_dict(jax.tree.map(lambda a: a.shape, nn.unbox(expected)))
    assert shapes == {k: v.shape for k, v in traverse_util.flatten_dict(params).items()}
    out = model.apply({"params": params}, tokens, types)
    return tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))


def max_diff(ours, theirs, x) -> list[float]:
    """Max |difference| per output, over real positions for per-position outputs."""
    diffs = []
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        real = x["valid"] if a.ndim >= 2 and a.shape[:2] == (B, T) else np.ones(B, bool)
        diffs.append(float(np.abs(a - b)[real].max()))
    return diffs


CASES = [  # (HF class, config overrides)
    ("BertForPreTraining", {}),
    ("BertForMaskedLM", {}),
    ("BertForSequenceClassification", {"num_labels": 3}),
    ("BertForTokenClassification", {"num_labels": 5}),
    ("BertForQuestionAnswering", {}),
    ("BertModel", {}),
    ("RobertaForMaskedLM", {"type_vocab_size": 1, "max_position_embeddings": 26}),
    ("RobertaForSequenceClassification",
     {"type_vocab_size": 1, "max_position_embeddings": 26, "num_labels": 3}),
]


@pytest.mark.parametrize("hf_class,config", CASES, ids=[c for c, _ in CASES])
def test_parity_and_round_trip(hf_class, config, tmp_path):
    model = hf_model(hf_class, **config)
    x = inputs(hf_class.startswith("Roberta"))
    theirs = hf_outputs(model, x)
    hf_config, tensors = saved(model, tmp_path / "hf")
    arch, params = imported(hf_config, tensors)
    assert arch.hf_class == hf_class
    ours = project_outputs(arch, params, x)
    if hf_class.endswith("ForMaskedLM"):
        ours = ours[:1]  # the MLM logits (the NSP head is fresh)
    diffs = max_diff(ours, theirs, x)
    print(f"{hf_class}: max |difference| per output {diffs}")
    assert max(diffs) <= TOLERANCE

    # Export: transformers loads it strictly (nothing missing or unexpected), same logits.
    out_config, out_tensors = hf_bert.export(arch, params)
    out_tensors = dict(out_tensors)
    assert out_config["architectures"] == [hf_class]
    out = tmp_path / "export"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(out_config))
    safetensors_numpy.save_file(out_tensors, str(out / "model.safetensors"))
    reloaded, info = getattr(transformers, hf_class).from_pretrained(
        str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    again = hf_outputs(reloaded.eval(), x)
    assert max(max_diff(again, theirs, x)) <= TOLERANCE

    # Export -> import gives the same params bitwise.
    _, params_again = imported(out_config, out_tensors)
    flat, flat_again = (traverse_util.flatten_dict(p) for p in (params, params_again))
    assert flat.keys() == flat_again.keys()
    for path, value in flat.items():
        np.testing.assert_array_equal(flat_again[path], value, err_msg="/".join(path))


def test_heads_and_fresh_parts():
    """The param paths each head uses, and the parts a class lacks coming out fresh."""
    hf_config = dict(model_type="bert", **SIZES, architectures=["BertForTokenClassification"],
                     id2label={"0": "O", "1": "B", "2": "I"})
    arch = hf_bert.architecture(hf_config)
    assert (arch.task, arch.num_labels) == ("tagging", 3)
    read = {}

    def reader(name):  # the core's reader raises UserError for an absent tensor
        read[name] = True
        raise UserError(f"no tensor {name!r}")

    paths = {path: thunk for path, thunk in hf_bert.import_params(hf_config, arch, reader)}
    assert ("tagger", "dense", "kernel") in paths
    pooler = paths[("bert", "pooler", "dense", "kernel")]()  # not in this class: fresh
    assert pooler.shape == (32, 32) and 0.01 < pooler.std() < 0.03
    assert not read  # a fresh part reads nothing
    with pytest.raises(UserError, match="no tensor 'classifier.weight'"):
        paths[("tagger", "dense", "kernel")]()
    # A project run with no Hugging Face class exports as its task's class.
    native = dataclasses.replace(arch, task="qa", num_labels=None, hf_class="")
    assert hf_bert.export(native, {})[0]["architectures"] == ["BertForQuestionAnswering"]


def test_native_run_exports(tmp_path):
    """A model trained here (no Hugging Face class, no token types) exports as its task's
    class, and transformers gives its logits."""
    config = from_preset("bert_tiny", vocab_size=SIZES["vocab_size"], num_layers=2, d_model=32,
                         num_heads=4, mlp_dim=64, max_len=24, type_vocab_size=0,
                         scan_layers=False, deterministic=True)
    arch = Architecture(model=config, task="classify", num_labels=3)
    model = hf_bert._model_for(arch)
    x = inputs(roberta=False)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x["tokens"]))
    rng = np.random.default_rng(2)  # random values everywhere: no unit scales, no zero biases
    params = jax.tree.map(lambda a: rng.normal(0.0, 0.3, a.shape).astype(np.float32),
                          nn.unbox(shapes["params"]))
    hf_config, tensors = hf_bert.export(arch, params)
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    safetensors_numpy.save_file(dict(tensors), str(tmp_path / "model.safetensors"))
    reloaded, info = transformers.BertForSequenceClassification.from_pretrained(
        str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    x["types"][:] = 0  # the exported model's one token type
    ours = model.apply({"params": params}, jnp.asarray(x["tokens"]))
    assert max(max_diff((np.asarray(ours),), hf_outputs(reloaded.eval(), x), x)) <= TOLERANCE


BASE = dict(model_type="bert", **SIZES, architectures=["BertForMaskedLM"])
REFUSALS = [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key'"),
    ({"is_decoder": True}, "is_decoder=True"),
    ({"add_cross_attention": True}, "add_cross_attention=True"),
    ({"hidden_act": "silu"}, "hidden_act='silu'"),
    ({"architectures": ["BertForMultipleChoice"]}, "architectures[0]='BertForMultipleChoice'"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings=False"),
    ({"architectures": ["BertForSequenceClassification"], "problem_type": "regression"},
     "problem_type='regression'"),
    ({"architectures": ["BertForQuestionAnswering"], "num_labels": 3}, "num_labels=3"),
    ({"model_type": "roberta", "architectures": ["RobertaForMaskedLM"],
      "hidden_act": "gelu_new"}, "hidden_act='gelu_new'"),
    ({"model_type": "albert"}, "model_type='albert'"),
]


@pytest.mark.parametrize("change,field", REFUSALS, ids=[f for _, f in REFUSALS])
def test_refusals(change, field):
    with pytest.raises(UnsupportedConfig) as error:
        hf_bert.architecture({**BASE, **change})
    message = str(error.value)
    assert field in message and "\n" not in message


def test_export_refuses_what_bert_cannot_express():
    arch = hf_bert.architecture(BASE)
    for change, field in (({"pre_ln": True}, "model.pre_ln=True"),
                          ({"activation": "swiglu"}, "model.activation='swiglu'")):
        bad = dataclasses.replace(arch, model=arch.model.replace(**change))
        with pytest.raises(UnsupportedConfig, match=field.replace("(", r"\(")):
            hf_bert.export(bad, {})


def _texts() -> list[str]:
    """A few hundred strings: unicode, accents, CJK, emoji, odd whitespace, code, numbers."""
    words = ["Hello", "world", "café", "naïve", "Ünïcödé", "straße", "日本語", "中文字",
             "Привет", "мир", "🙂", "emoji🎉", "ÅngSTRöm", "don't", "U.S.A.", "e-mail",
             "3.14159", "1,000,000", "#hashtag", "@user", "https://x.org/a?b=c",
             "def f(x):", "return x**2", "a_b = {'k': [1, 2]}", "if (a&&b) {}", "x+=1;",
             "\t", "\n", "  ", "\u00a0", "\u3000", "\u200b", "tokenization", "unaffable",
             "résumé", "Ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย", "한국어", "¿Qué?"]
    rng = np.random.default_rng(3)
    texts = [*words, "", " ", "   leading and trailing   "]
    while len(texts) < 300:
        picked = rng.choice(len(words), rng.integers(1, 8))
        texts.append(rng.choice(["", " ", "  ", "\t", "\n"]).join(words[i] for i in picked))
    return texts


def test_wordpiece_tokenizer_matches_transformers(tmp_path):
    """The project's Hugging Face tokenizer encodes like transformers' BertTokenizer."""
    import tokenizers

    from transformer_jax.data import hf_tokenizer

    texts = _texts()
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(texts[40:], vocab_size=300)  # some pieces stay unknown
    trainer.save_model(str(tmp_path))
    theirs = transformers.BertTokenizer(vocab_file=str(tmp_path / "vocab.txt"))
    theirs.save_pretrained(tmp_path / "hf")
    ours = hf_tokenizer.HFTokenizer.from_dir(tmp_path / "hf")
    expected = theirs(texts, add_special_tokens=False)["input_ids"]
    assert [ours.encode(t) for t in texts] == expected
    assert any(theirs.unk_token_id in ids for ids in expected)  # unknown pieces exercised
    for piece, want in (("[CLS]", theirs.cls_token_id), ("[SEP]", theirs.sep_token_id),
                        ("[MASK]", theirs.mask_token_id), ("[PAD]", theirs.pad_token_id)):
        assert ours.piece_id(piece) == want
    assert (ours.pad_id, ours.unk_id, ours.vocab_size) == (
        theirs.pad_token_id, theirs.unk_token_id, len(theirs))
