"""Llama-style decoders (Llama, SmolLM, TinyLlama) <-> the project's `GPT` with RoPE,
RMSNorm, SwiGLU and grouped-query attention (the `gpt_1b` shape).

The project's RoPE is the same "rotate half" layout as Hugging Face Llama (pairs (i, i + H/2)
with frequency theta^(-2i/H)), so q/k weights map without permutation. torch `Linear`
weights are [out, in]: transposed and split per head on the way in.
Shapes: D d_model, N heads, K kv heads, H head dim, F mlp width, V vocab.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from transformer_jax.interop import checks
from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.models.config import ModelConfig

_CLASSES = ("LlamaForCausalLM", "LlamaModel")
_PROJ = (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"))
_MLP = (("wi_gate", "gate_proj"), ("wi_up", "up_proj"))


def _rope_theta(c: dict) -> float:
    """The RoPE base: `rope_parameters` (transformers >= 5) or the older `rope_scaling` /
    `rope_theta` keys; only plain ("default") RoPE is expressible."""
    params = c.get("rope_parameters") or c.get("rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise UnsupportedConfig(f"config.json rope type {kind!r} is not supported (the "
                                "project has plain RoPE only); supported: 'default'")
    return float(params.get("rope_theta", c.get("rope_theta", 10_000.0)))


class LlamaFamily:
    """`HFFamily` for model_type "llama" (and "qwen2", refused: see `architecture`)."""

    model_types = ("llama", "qwen2")

    def architecture(self, hf_config: dict) -> Architecture:
        c = hf_config
        if c.get("model_type") == "qwen2":
            raise UnsupportedConfig(
                "config.json model_type='qwen2' has biases on q/k/v but not on o_proj or the "
                "MLP; the project's use_bias is all-or-nothing, so it is not supported")
        hf_class = checks.architecture_name(c, _CLASSES)
        checks.refuse_unless(c, "hidden_act", ("silu",), "the project's SwiGLU gate is silu")
        checks.refuse_unless(c, "attention_bias", (False,),
                             "the project's Llama-style layers have no biases")
        checks.refuse_unless(c, "mlp_bias", (False,),
                             "the project's Llama-style layers have no biases")
        checks.refuse_unless(c, "pretraining_tp", (1,), "tensor-parallel slicing changes numerics")
        for key in ("sliding_window", "use_sliding_window"):
            checks.refuse_unless(c, key, (None, False), "the project has no sliding-window "
                                                        "attention")
        d, n = checks.required(c, "hidden_size"), checks.required(c, "num_attention_heads")
        head_dim = c.get("head_dim") or d // n
        model = ModelConfig(
            family="gpt", vocab_size=checks.required(c, "vocab_size"),
            max_len=checks.required(c, "max_position_embeddings"),
            num_layers=checks.required(c, "num_hidden_layers"), d_model=d, num_heads=n,
            num_kv_heads=c.get("num_key_value_heads") or n,
            head_dim=None if head_dim * n == d else head_dim,
            mlp_dim=checks.required(c, "intermediate_size"), activation="swiglu",
            norm="rmsnorm", norm_eps=c.get("rms_norm_eps", 1e-6), pre_ln=True,
            final_norm=True, position="rope", rope_theta=_rope_theta(c), use_bias=False,
            tie_embeddings=bool(c.get("tie_word_embeddings", False)), dropout_rate=0.0,
            attention_dropout_rate=float(c.get("attention_dropout", 0.0)),
            scan_layers=False, preset="gpt_1b",
        )
        return Architecture(model=model, task="lm", hf_class=hf_class)

    def import_params(self, hf_config: dict, arch: Architecture, read: ReadTensor
                      ) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
        cfg = arch.model
        p = "model." if arch.hf_class == "LlamaForCausalLM" else ""
        h = cfg.dim_per_head
        yield ("embedder", "token_embed", "embedding"), lambda: read(f"{p}embed_tokens.weight")
        for i in range(cfg.num_layers):
            hf, me = f"{p}layers.{i}.", ("decoder", f"layers_{i}")
            for mine, theirs in _PROJ:
                # [heads*H, D] -> [D, heads, H]
                yield (*me, "self_attention", mine, "kernel"), (
                    lambda hf=hf, t=theirs: read(f"{hf}self_attn.{t}.weight").T.reshape(
                        cfg.d_model, -1, h))
            yield (*me, "self_attention", "out", "kernel"), (  # [D, N*H] -> [N, H, D]
                lambda hf=hf: read(f"{hf}self_attn.o_proj.weight").T.reshape(-1, h, cfg.d_model))
            for mine, theirs in _MLP:
                yield (*me, "mlp", mine, "kernel"), (
                    lambda hf=hf, t=theirs: read(f"{hf}mlp.{t}.weight").T)
            yield (*me, "mlp", "wo", "kernel"), lambda hf=hf: read(f"{hf}mlp.down_proj.weight").T
            yield (*me, "self_attention_norm", "scale"), (
                lambda hf=hf: read(f"{hf}input_layernorm.weight"))
            yield (*me, "mlp_norm", "scale"), (
                lambda hf=hf: read(f"{hf}post_attention_layernorm.weight"))
        yield ("decoder", "final_norm", "scale"), lambda: read(f"{p}norm.weight")
        if not cfg.tie_embeddings:
            yield ("lm_head", "kernel"), lambda: read("lm_head.weight").T

    def export(self, arch: Architecture, params: dict
               ) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
        cfg = arch.model
        if cfg.family != "gpt" or cfg.position != "rope" or cfg.norm != "rmsnorm" or (
                cfg.activation != "swiglu" or cfg.use_bias or not cfg.pre_ln):
            raise UnsupportedConfig("only Llama-shaped models (RoPE, RMSNorm, SwiGLU, no biases, "
                                    "pre-LN) export as llama")
        hf_config = {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
            "intermediate_size": cfg.mlp_dim, "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.kv_heads,
            "head_dim": cfg.dim_per_head, "hidden_act": "silu",
            "max_position_embeddings": cfg.max_len, "rms_norm_eps": cfg.norm_eps,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "attention_bias": False, "mlp_bias": False,
            "attention_dropout": cfg.attention_dropout_rate,
            "tie_word_embeddings": cfg.tie_embeddings,
        }
        return hf_config, _export_tensors(cfg, params)


def _export_tensors(cfg: ModelConfig, params: dict) -> Iterator[tuple[str, np.ndarray]]:
    d = cfg.d_model
    dec = params["decoder"]
    yield "model.embed_tokens.weight", params["embedder"]["token_embed"]["embedding"]
    for i in range(cfg.num_layers):
        layer, hf = dec[f"layers_{i}"], f"model.layers.{i}."
        att = layer["self_attention"]
        for mine, theirs in _PROJ:
            yield f"{hf}self_attn.{theirs}.weight", att[mine]["kernel"].reshape(d, -1).T
        yield f"{hf}self_attn.o_proj.weight", att["out"]["kernel"].reshape(-1, d).T
        for mine, theirs in (*_MLP, ("wo", "down_proj")):
            yield f"{hf}mlp.{theirs}.weight", layer["mlp"][mine]["kernel"].T
        yield f"{hf}input_layernorm.weight", layer["self_attention_norm"]["scale"]
        yield f"{hf}post_attention_layernorm.weight", layer["mlp_norm"]["scale"]
    yield "model.norm.weight", dec["final_norm"]["scale"]
    if not cfg.tie_embeddings:
        yield "lm_head.weight", params["lm_head"]["kernel"].T


FAMILY = LlamaFamily()
