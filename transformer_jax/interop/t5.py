"""T5 v1.0 and v1.1 / Flan-T5 (`model_type` "t5") <-> the project's encoder-decoder.

T5: pre-RMSNorm blocks without biases, one shared token table, no position embeddings but
a bucketed relative position bias (one table per stack, in layer 0), unscaled q.k, a final
RMSNorm per stack, decoding starts with the pad id. v1.0: ReLU MLP, tied output scaled by
d_model**-0.5. v1.1 / Flan-T5: tanh-GELU-gated MLP ("gated-gelu"), untied `lm_head`.

Tensor names (i: layer; decoder sublayers 0 self, 1 cross, 2 MLP; encoder 0 self, 1 MLP):
  shared.weight [V, D], lm_head.weight [V, D] (untied only)
  {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias.weight [buckets, N]
  {stack}.block.i.layer.j.{SelfAttention,EncDecAttention}.{q,k,v,o}.weight, .layer_norm.weight
  {stack}.block.i.layer.j.DenseReluDense.{wi | wi_0, wi_1, wo}.weight
  {stack}.final_layer_norm.weight
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from transformer_jax.errors import UserError
from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.interop.linear import to_kernel, to_weight
from transformer_jax.models.config import ModelConfig

model_types = ("t5",)

# feed_forward_proj -> the project's activation.
_ACTIVATIONS = {"relu": "relu", "gated-gelu": "geglu_tanh", "gated-silu": "swiglu",
                "gelu": "gelu", "silu": "silu"}
_GATED = ("geglu_tanh", "swiglu")


def architecture(hf_config: dict) -> Architecture:
    """The project's encoder-decoder for a T5 config.json (see the module docstring)."""
    proj = hf_config.get("feed_forward_proj", "relu")
    if proj not in _ACTIVATIONS:
        raise UnsupportedConfig(
            f"T5 config.json feed_forward_proj={proj!r} is not supported "
            f"(supported: {sorted(_ACTIVATIONS)})"
        )
    if hf_config.get("is_decoder", False):
        raise UnsupportedConfig("T5 config.json is_decoder=true (a decoder-only T5) is not "
                                "supported: only the encoder-decoder")
    # v1.0 ties the output to `shared` and scales the decoder output by D**-0.5; v1.1 and
    # Flan-T5 do neither. transformers >= 5 records that as `scale_decoder_outputs` (and
    # always writes tie_word_embeddings=true); older config.json files only as
    # `tie_word_embeddings=false`.
    tied = bool(hf_config.get("scale_decoder_outputs",
                              hf_config.get("tie_word_embeddings", True) is not False))
    dropout = float(hf_config.get("dropout_rate", 0.1))
    pad = int(hf_config.get("pad_token_id", 0) or 0)
    start = hf_config.get("decoder_start_token_id")
    model = ModelConfig(
        family="encdec",
        vocab_size=int(hf_config.get("vocab_size", 32128)),
        max_len=int(hf_config.get("n_positions", 512)),
        num_layers=int(hf_config.get("num_layers", 6)),
        num_decoder_layers=hf_config.get("num_decoder_layers"),
        d_model=int(hf_config.get("d_model", 512)),
        num_heads=int(hf_config.get("num_heads", 8)),
        head_dim=int(hf_config.get("d_kv", 64)),
        mlp_dim=int(hf_config.get("d_ff", 2048)),
        activation=_ACTIVATIONS[proj],
        norm="rmsnorm",
        norm_eps=float(hf_config.get("layer_norm_epsilon", 1e-6)),
        norm_two_pass=True,
        pre_ln=True,
        final_norm=True,
        position="relative",
        relative_buckets=int(hf_config.get("relative_attention_num_buckets", 32)),
        relative_max_distance=int(hf_config.get("relative_attention_max_distance", 128)),
        scaled_attention=False,
        use_bias=False,
        tie_embeddings=tied,
        scale_decoder_output=tied,
        dropout_rate=dropout,
        attention_dropout_rate=dropout,
        pad_id=pad,
        decoder_start_id=pad if start is None else int(start),
        scan_layers=False,
    )
    arch_names = hf_config.get("architectures") or ["T5ForConditionalGeneration"]
    return Architecture(model=model, task="seq2seq", hf_class=arch_names[0])


def _names(cfg: ModelConfig) -> Iterator[tuple[ParamPath, str, str]]:
    """(param path, HF tensor name, kind) for every leaf; kind says how to reshape it."""
    yield ("embedder", "token_embed", "embedding"), "shared.weight", "copy"
    if not cfg.tie_embeddings:
        yield ("lm_head", "kernel"), "lm_head.weight", "lm_head"
    mlp = (("wi_gate", "wi_0"), ("wi_up", "wi_1")) if cfg.activation in _GATED else (("wi", "wi"),)
    for stack, layers in (("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers)):
        yield ((stack, "relative_position_bias", "embedding"),
               f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "copy")
        attns = [("self_attention", "SelfAttention")]
        if stack == "decoder":
            attns.append(("cross_attention", "EncDecAttention"))
        for i in range(layers):
            ours = (stack, f"layers_{i}")
            hf = f"{stack}.block.{i}.layer"
            for j, (name, hf_name) in enumerate(attns):
                yield (*ours, f"{name}_norm", "scale"), f"{hf}.{j}.layer_norm.weight", "copy"
                for p, q in (("query", "q"), ("key", "k"), ("value", "v")):
                    yield (*ours, name, p, "kernel"), f"{hf}.{j}.{hf_name}.{q}.weight", "in"
                yield (*ours, name, "out", "kernel"), f"{hf}.{j}.{hf_name}.o.weight", "out"
            j = len(attns)
            yield (*ours, "mlp_norm", "scale"), f"{hf}.{j}.layer_norm.weight", "copy"
            for p, q in mlp:
                yield (*ours, "mlp", p, "kernel"), f"{hf}.{j}.DenseReluDense.{q}.weight", "wi"
            yield (*ours, "mlp", "wo", "kernel"), f"{hf}.{j}.DenseReluDense.wo.weight", "wo"
        yield (stack, "final_norm", "scale"), f"{stack}.final_layer_norm.weight", "copy"


def _convert(cfg: ModelConfig, kind: str, w: np.ndarray) -> np.ndarray:
    n, h, d = cfg.num_heads, cfg.dim_per_head, cfg.d_model
    if kind == "in":
        return to_kernel(w, (d,), (n, h))
    if kind == "out":
        return to_kernel(w, (n, h), (d,))
    if kind in ("wi", "wo", "lm_head"):
        return to_kernel(w, (w.shape[1],), (w.shape[0],))
    return np.asarray(w, np.float32)


def import_params(
    hf_config: dict, arch: Architecture, read: ReadTensor
) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
    """Every (unrolled) param of `arch.model` with a thunk reading it from the HF tensors."""
    cfg = arch.model
    for path, name, kind in _names(cfg):
        yield path, lambda name=name, kind=kind: _convert(cfg, kind, _read_tensor(read, name))


def _read_tensor(read: ReadTensor, name: str) -> np.ndarray:
    """`read(name)`; an untied T5 saved by transformers >= 5 whose `lm_head` is tied to
    `shared` in the model has no lm_head.weight in its files: that head is `shared`."""
    try:
        return read(name)
    except (KeyError, UserError):
        if name != "lm_head.weight":
            raise
        return read("shared.weight")


def export(arch: Architecture, params: dict) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
    """The T5ForConditionalGeneration config.json and its tensors (tied copies included)."""
    cfg = arch.model
    if cfg.position != "relative" or cfg.norm != "rmsnorm" or cfg.use_bias or not cfg.pre_ln:
        raise UnsupportedConfig("only T5-shaped encoder-decoders (relative positions, RMSNorm, "
                                "pre-LN, no biases) export as model_type 't5'")
    proj = {v: k for k, v in _ACTIVATIONS.items()}[cfg.activation]
    hf_config = {
        "model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
        "is_encoder_decoder": True, "vocab_size": cfg.vocab_size, "n_positions": cfg.max_len,
        "d_model": cfg.d_model, "d_kv": cfg.dim_per_head, "d_ff": cfg.mlp_dim,
        "num_layers": cfg.num_layers, "num_decoder_layers": cfg.decoder_layers,
        "num_heads": cfg.num_heads, "relative_attention_num_buckets": cfg.relative_buckets,
        "relative_attention_max_distance": cfg.relative_max_distance,
        "dropout_rate": cfg.dropout_rate, "layer_norm_epsilon": cfg.norm_eps,
        "feed_forward_proj": proj, "tie_word_embeddings": cfg.tie_embeddings,
        "pad_token_id": cfg.pad_id,
        "decoder_start_token_id": cfg.pad_id if cfg.decoder_start_id is None
        else cfg.decoder_start_id,
    }

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        for path, name, kind in _names(cfg):
            value = params
            for key in path:
                value = value[key]
            value = np.asarray(value, np.float32)
            if kind == "in":
                value = to_weight(value, 1)
            elif kind in ("out", "wi", "wo", "lm_head"):
                value = to_weight(value, value.ndim - 1)
            yield name, value
            if name == "shared.weight":
                yield "encoder.embed_tokens.weight", value
                yield "decoder.embed_tokens.weight", value
                if cfg.tie_embeddings:
                    yield "lm_head.weight", value

    return hf_config, tensors()
