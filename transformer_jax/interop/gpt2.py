"""GPT-2 (all sizes) <-> the project's `GPT` with learned positions, pre-LN and tied embeddings.

Hugging Face layout: `Conv1D` weights are already [in, out]; `c_attn` holds q|k|v fused
along its output dim [D, 3D]; `lm_head.weight` is the tied `wte` (not stored separately).
Shapes: D d_model, N heads, H head dim, F mlp width, V vocab, P positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from transformer_jax.interop import checks
from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.models.config import ModelConfig

_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                "relu": "relu"}
_CLASSES = ("GPT2LMHeadModel", "GPT2Model")


class GPT2Family:
    """`HFFamily` for model_type "gpt2"."""

    model_types = ("gpt2",)

    def architecture(self, hf_config: dict) -> Architecture:
        c = hf_config
        hf_class = checks.architecture_name(c, _CLASSES)
        checks.refuse_unless(c, "scale_attn_by_inverse_layer_idx", (False,),
                             "the project scales attention logits by 1/sqrt(H) only")
        checks.refuse_unless(c, "reorder_and_upcast_attn", (False,),
                             "the project has no reordered, upcast attention")
        checks.refuse_unless(c, "scale_attn_weights", (True,),
                             "the project always scales attention logits by 1/sqrt(H)")
        checks.refuse_unless(c, "add_cross_attention", (False,),
                             "a decoder-only GPT has no cross-attention")
        checks.refuse_unless(c, "tie_word_embeddings", (True,),
                             "GPT-2's lm_head is the token embedding")
        act = c.get("activation_function", "gelu_new")
        if act not in _ACTIVATIONS:
            raise UnsupportedConfig(f"config.json activation_function={act!r} is not supported; "
                                    f"supported: {', '.join(_ACTIVATIONS)}")
        d = checks.required(c, "n_embd")
        model = ModelConfig(
            family="gpt", vocab_size=checks.required(c, "vocab_size"),
            max_len=checks.required(c, "n_positions"), num_layers=checks.required(c, "n_layer"),
            d_model=d, num_heads=checks.required(c, "n_head"),
            mlp_dim=c.get("n_inner") or 4 * d, activation=_ACTIVATIONS[act], norm="layernorm",
            norm_eps=c.get("layer_norm_epsilon", 1e-5), pre_ln=True, final_norm=True,
            position="learned", use_bias=True, tie_embeddings=True,
            dropout_rate=c.get("resid_pdrop", 0.1), attention_dropout_rate=c.get("attn_pdrop", 0.1),
            scan_layers=False, preset="gpt2_small",
        )
        return Architecture(model=model, task="lm", hf_class=hf_class)

    def import_params(self, hf_config: dict, arch: Architecture, read: ReadTensor
                      ) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
        cfg = arch.model
        p = "transformer." if arch.hf_class == "GPT2LMHeadModel" else ""
        n, h = cfg.num_heads, cfg.dim_per_head
        yield ("embedder", "token_embed", "embedding"), lambda: read(f"{p}wte.weight")
        yield ("embedder", "position_embed", "embedding"), lambda: read(f"{p}wpe.weight")
        for i in range(cfg.num_layers):
            hf, me = f"{p}h.{i}.", ("decoder", f"layers_{i}")

            def qkv(part: int, what: str, hf=hf) -> Callable[[], np.ndarray]:
                def build() -> np.ndarray:
                    full = read(f"{hf}attn.c_attn.{what}")  # [D, 3D] or [3D]
                    piece = np.split(full, 3, axis=-1)[part]
                    return piece.reshape((*piece.shape[:-1], n, h))
                return build

            for part, name in enumerate(("query", "key", "value")):
                yield (*me, "self_attention", name, "kernel"), qkv(part, "weight")
                yield (*me, "self_attention", name, "bias"), qkv(part, "bias")
            yield (*me, "self_attention", "out", "kernel"), (
                lambda hf=hf: read(f"{hf}attn.c_proj.weight").reshape(n, h, -1))
            yield (*me, "self_attention", "out", "bias"), (
                lambda hf=hf: read(f"{hf}attn.c_proj.bias"))
            for norm, hf_norm in (("self_attention_norm", "ln_1"), ("mlp_norm", "ln_2")):
                yield (*me, norm, "scale"), lambda hf=hf, x=hf_norm: read(f"{hf}{x}.weight")
                yield (*me, norm, "bias"), lambda hf=hf, x=hf_norm: read(f"{hf}{x}.bias")
            for mine, theirs in (("wi", "c_fc"), ("wo", "c_proj")):
                for leaf, hf_leaf in (("kernel", "weight"), ("bias", "bias")):
                    yield (*me, "mlp", mine, leaf), (
                        lambda hf=hf, t=theirs, x=hf_leaf: read(f"{hf}mlp.{t}.{x}"))
        yield ("decoder", "final_norm", "scale"), lambda: read(f"{p}ln_f.weight")
        yield ("decoder", "final_norm", "bias"), lambda: read(f"{p}ln_f.bias")

    def export(self, arch: Architecture, params: dict
               ) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
        cfg = arch.model
        if cfg.family != "gpt" or cfg.position != "learned" or not cfg.pre_ln or (
                cfg.norm != "layernorm" or not cfg.use_bias or not cfg.tie_embeddings
                or cfg.kv_heads != cfg.num_heads or cfg.activation not in ("gelu_tanh", "gelu",
                                                                            "relu")
                or cfg.head_dim not in (None, cfg.d_model // cfg.num_heads)):
            raise UnsupportedConfig(
                "only GPT-2-shaped models (learned positions, pre-LN LayerNorm, biases, tied "
                "embeddings, no GQA, gelu_tanh/gelu/relu) export as gpt2")
        act = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[cfg.activation]
        hf_config = {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": cfg.vocab_size, "n_positions": cfg.max_len, "n_embd": cfg.d_model,
            "n_layer": cfg.num_layers, "n_head": cfg.num_heads, "n_inner": cfg.mlp_dim,
            "activation_function": act, "layer_norm_epsilon": cfg.norm_eps,
            "resid_pdrop": cfg.dropout_rate, "embd_pdrop": cfg.dropout_rate,
            "attn_pdrop": cfg.attention_dropout_rate, "tie_word_embeddings": True,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
        }
        return hf_config, _export_tensors(cfg, params)


def _export_tensors(cfg: ModelConfig, params: dict) -> Iterator[tuple[str, np.ndarray]]:
    d = cfg.d_model
    emb, dec = params["embedder"], params["decoder"]
    yield "transformer.wte.weight", emb["token_embed"]["embedding"]
    yield "transformer.wpe.weight", emb["position_embed"]["embedding"]
    for i in range(cfg.num_layers):
        layer, hf = dec[f"layers_{i}"], f"transformer.h.{i}."
        att = layer["self_attention"]
        yield f"{hf}attn.c_attn.weight", np.concatenate(
            [att[x]["kernel"].reshape(d, -1) for x in ("query", "key", "value")], axis=-1)
        yield f"{hf}attn.c_attn.bias", np.concatenate(
            [att[x]["bias"].reshape(-1) for x in ("query", "key", "value")])
        yield f"{hf}attn.c_proj.weight", att["out"]["kernel"].reshape(-1, d)
        yield f"{hf}attn.c_proj.bias", att["out"]["bias"]
        for norm, hf_norm in (("self_attention_norm", "ln_1"), ("mlp_norm", "ln_2")):
            yield f"{hf}{hf_norm}.weight", layer[norm]["scale"]
            yield f"{hf}{hf_norm}.bias", layer[norm]["bias"]
        for mine, theirs in (("wi", "c_fc"), ("wo", "c_proj")):
            yield f"{hf}mlp.{theirs}.weight", layer["mlp"][mine]["kernel"]
            yield f"{hf}mlp.{theirs}.bias", layer["mlp"][mine]["bias"]
    yield "transformer.ln_f.weight", dec["final_norm"]["scale"]
    yield "transformer.ln_f.bias", dec["final_norm"]["bias"]


FAMILY = GPT2Family()
