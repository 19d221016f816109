"""BART (`model_type` "bart") <-> the project's encoder-decoder; its layer names serve Marian.

BART: post-LN blocks with biases, exact GELU, one shared token table (source, target and the
tied `lm_head`), learned positions in each stack (table of max_position_embeddings + 2 rows,
looked up at position + 2) followed by a per-stack embedding LayerNorm, a `final_logits_bias`
and decoding from `decoder_start_token_id` (eos, 2).

Tensor names (stack: encoder | decoder; i: layer):
  model.shared.weight [V, D], final_logits_bias [1, V]
  model.{stack}.embed_positions.weight [P + 2, D], model.{stack}.layernorm_embedding.*
  model.{stack}.layers.i.{self_attn, encoder_attn}.{q,k,v,out}_proj.{weight,bias}
  model.{stack}.layers.i.{self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm}.*
  model.{stack}.layers.i.{fc1, fc2}.{weight,bias}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.interop.linear import to_kernel, to_weight
from transformer_jax.models.config import ModelConfig

model_types = ("bart",)

# activation_function -> the project's activation (Hugging Face ACT2FN names).
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu", "swish": "silu", "silu": "silu"}
POSITION_OFFSET = 2  # BartLearnedPositionalEmbedding's offset


def check_common(hf_config: dict, name: str) -> None:
    """Refuses what neither BART nor Marian layers can express here (one line each)."""
    act = hf_config.get("activation_function", "gelu")
    if act not in ACTIVATIONS:
        raise UnsupportedConfig(f"{name} config.json activation_function={act!r} is not "
                                f"supported (supported: {sorted(ACTIVATIONS)})")
    for enc, dec in (("encoder_ffn_dim", "decoder_ffn_dim"),
                     ("encoder_attention_heads", "decoder_attention_heads")):
        if hf_config.get(enc) != hf_config.get(dec):
            raise UnsupportedConfig(f"{name} config.json {enc}={hf_config.get(enc)} != "
                                    f"{dec}={hf_config.get(dec)}: the encoder and decoder "
                                    "must have the same shape here")
    for key, ok in (("normalize_before", False), ("add_final_layer_norm", False),
                    ("add_bias_logits", False), ("normalize_embedding", True)):
        if key in hf_config and bool(hf_config[key]) != ok:
            raise UnsupportedConfig(f"{name} config.json {key}={hf_config[key]!r} is not "
                                    f"supported (only {ok})")
    if hf_config.get("tie_word_embeddings", True) is False:
        raise UnsupportedConfig(f"{name} config.json tie_word_embeddings=false is not supported")


def common_model(hf_config: dict, **fields) -> ModelConfig:
    """The ModelConfig fields BART and Marian share, plus `fields`."""
    dropout = float(hf_config.get("dropout", 0.1))
    pad = int(hf_config["pad_token_id"])
    start = hf_config.get("decoder_start_token_id")
    return ModelConfig(
        family="encdec",
        vocab_size=int(hf_config["vocab_size"]),
        max_len=int(hf_config.get("max_position_embeddings", 1024)),
        num_layers=int(hf_config["encoder_layers"]),
        num_decoder_layers=int(hf_config["decoder_layers"]),
        d_model=int(hf_config["d_model"]),
        num_heads=int(hf_config["encoder_attention_heads"]),
        mlp_dim=int(hf_config["encoder_ffn_dim"]),
        activation=ACTIVATIONS[hf_config.get("activation_function", "gelu")],
        norm="layernorm",
        norm_eps=1e-5,
        norm_two_pass=True,
        pre_ln=False,
        final_norm=False,
        use_bias=True,
        tie_embeddings=True,
        scale_embeddings=bool(hf_config.get("scale_embedding", False)),
        final_logits_bias=True,
        dropout_rate=dropout,
        attention_dropout_rate=float(hf_config.get("attention_dropout", 0.0)),
        pad_id=pad,
        decoder_start_id=pad if start is None else int(start),
        scan_layers=False,
        **fields,
    )


def architecture(hf_config: dict) -> Architecture:
    """The project's encoder-decoder for a BART config.json (see the module docstring)."""
    check_common(hf_config, "BART")
    model = common_model(hf_config, position="learned", position_offset=POSITION_OFFSET,
                         embed_norm=True, decoder_embedder=True)
    arch_names = hf_config.get("architectures") or ["BartForConditionalGeneration"]
    return Architecture(model=model, task="seq2seq", hf_class=arch_names[0])


def layer_names(cfg: ModelConfig) -> Iterator[tuple[ParamPath, str, str]]:
    """(param path, HF name, kind) of every block leaf of BART-style (BART, Marian) stacks."""
    for stack, num in (("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers)):
        attns = [("self_attention", "self_attn")]
        if stack == "decoder":
            attns.append(("cross_attention", "encoder_attn"))
        for i in range(num):
            ours, hf = (stack, f"layers_{i}"), f"model.{stack}.layers.{i}"
            for name, hf_name in attns:
                for p in ("scale", "bias"):
                    q = "weight" if p == "scale" else "bias"
                    yield (*ours, f"{name}_norm", p), f"{hf}.{hf_name}_layer_norm.{q}", "copy"
                for p, q in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out")):
                    kind = "out" if p == "out" else "in"
                    yield (*ours, name, p, "kernel"), f"{hf}.{hf_name}.{q}_proj.weight", kind
                    yield ((*ours, name, p, "bias"), f"{hf}.{hf_name}.{q}_proj.bias",
                           "copy" if p == "out" else "in_bias")
            yield (*ours, "mlp_norm", "scale"), f"{hf}.final_layer_norm.weight", "copy"
            yield (*ours, "mlp_norm", "bias"), f"{hf}.final_layer_norm.bias", "copy"
            for p, q in (("wi", "fc1"), ("wo", "fc2")):
                yield (*ours, "mlp", p, "kernel"), f"{hf}.{q}.weight", "dense"
                yield (*ours, "mlp", p, "bias"), f"{hf}.{q}.bias", "copy"


def _names(cfg: ModelConfig) -> Iterator[tuple[ParamPath, str, str]]:
    yield ("embedder", "token_embed", "embedding"), "model.shared.weight", "copy"
    yield ("final_logits_bias",), "final_logits_bias", "row"
    for stack, ours in (("encoder", "embedder"), ("decoder", "decoder_embedder")):
        yield (ours, "position_embed", "embedding"), f"model.{stack}.embed_positions.weight", "copy"
        yield (ours, "embed_norm", "scale"), f"model.{stack}.layernorm_embedding.weight", "copy"
        yield (ours, "embed_norm", "bias"), f"model.{stack}.layernorm_embedding.bias", "copy"
    yield from layer_names(cfg)


def convert(cfg: ModelConfig, kind: str, w: np.ndarray) -> np.ndarray:
    """An HF tensor of `kind` (see `layer_names`) -> the project's param."""
    n, h, d = cfg.num_heads, cfg.dim_per_head, cfg.d_model
    if kind == "in":
        return to_kernel(w, (d,), (n, h))
    if kind == "out":
        return to_kernel(w, (n, h), (d,))
    if kind == "dense":
        return to_kernel(w, (w.shape[1],), (w.shape[0],))
    if kind == "in_bias":
        return np.asarray(w, np.float32).reshape(n, h)
    if kind == "row":
        return np.asarray(w, np.float32).reshape(-1)
    return np.asarray(w, np.float32)


def unconvert(kind: str, value: np.ndarray) -> np.ndarray:
    """The inverse of `convert`: the project's param -> the HF tensor."""
    value = np.asarray(value, np.float32)
    if kind in ("in", "dense"):
        return to_weight(value, 1)
    if kind == "out":
        return to_weight(value, 2)
    if kind == "in_bias":
        return value.reshape(-1)
    if kind == "row":
        return value.reshape(1, -1)
    return value


def import_params(
    hf_config: dict, arch: Architecture, read: ReadTensor
) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
    """Every (unrolled) param of `arch.model` with a thunk reading it from the HF tensors."""
    cfg = arch.model
    for path, name, kind in _names(cfg):
        yield path, lambda name=name, kind=kind: convert(cfg, kind, read(name))


def lookup(params: dict, path: ParamPath) -> np.ndarray:
    """The leaf at `path` of a nested params dict."""
    for key in path:
        params = params[key]
    return params


def common_config(cfg: ModelConfig) -> dict:
    """The config.json fields BART and Marian share."""
    act = {v: k for k, v in ACTIVATIONS.items() if k not in ("gelu_pytorch_tanh", "silu")}
    return {
        "is_encoder_decoder": True, "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_len, "d_model": cfg.d_model,
        "encoder_layers": cfg.num_layers, "decoder_layers": cfg.decoder_layers,
        "encoder_attention_heads": cfg.num_heads, "decoder_attention_heads": cfg.num_heads,
        "encoder_ffn_dim": cfg.mlp_dim, "decoder_ffn_dim": cfg.mlp_dim,
        "activation_function": act[cfg.activation], "dropout": cfg.dropout_rate,
        "attention_dropout": cfg.attention_dropout_rate,
        "scale_embedding": cfg.scale_embeddings, "pad_token_id": cfg.pad_id,
        "decoder_start_token_id": cfg.pad_id if cfg.decoder_start_id is None
        else cfg.decoder_start_id,
        "tie_word_embeddings": True,
    }


def export(arch: Architecture, params: dict) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
    """The BartForConditionalGeneration config.json and its tensors (tied copies included)."""
    cfg = arch.model
    if not (cfg.decoder_embedder and cfg.final_logits_bias and cfg.position == "learned"
            and cfg.position_offset == POSITION_OFFSET and cfg.embed_norm and not cfg.pre_ln):
        raise UnsupportedConfig("only BART-shaped encoder-decoders export as model_type 'bart'")
    hf_config = {"model_type": "bart", "architectures": ["BartForConditionalGeneration"],
                 **common_config(cfg)}

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        for path, name, kind in _names(cfg):
            value = unconvert(kind, lookup(params, path))
            yield name, value
            if name == "model.shared.weight":
                for copy in ("model.encoder.embed_tokens.weight",
                             "model.decoder.embed_tokens.weight", "lm_head.weight"):
                    yield copy, value

    return hf_config, tensors()
