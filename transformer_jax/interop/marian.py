"""Marian / opus-mt (`model_type` "marian") <-> the project's encoder-decoder.

Marian is BART's layout (see bart.py) with fixed sinusoidal positions instead of learned
ones: 10000^(-2i/D) timescales in [sin | cos] halves (MarianSinusoidalPositionalEmbedding),
no embedding LayerNorm, embeddings scaled by sqrt(D) (`scale_embedding`), a
`final_logits_bias`, one table shared by source, target and output, and decoding from the
pad id (`decoder_start_token_id`). opus-mt checkpoints use the SiLU ("swish") MLP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from transformer_jax.interop import bart
from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.models.config import ModelConfig

model_types = ("marian",)


def architecture(hf_config: dict) -> Architecture:
    """The project's encoder-decoder for a Marian config.json (see the module docstring)."""
    bart.check_common(hf_config, "Marian")
    if not hf_config.get("share_encoder_decoder_embeddings", True):
        raise UnsupportedConfig("Marian config.json share_encoder_decoder_embeddings=false "
                                "(separate source/target vocabularies) is not supported")
    dec_vocab = hf_config.get("decoder_vocab_size")
    if dec_vocab not in (None, hf_config["vocab_size"]):
        raise UnsupportedConfig(f"Marian config.json decoder_vocab_size={dec_vocab} != "
                                f"vocab_size={hf_config['vocab_size']} is not supported")
    if hf_config["d_model"] % 2:
        raise UnsupportedConfig(f"Marian config.json d_model={hf_config['d_model']} is odd: "
                                "the sinusoidal positions need an even width")
    model = bart.common_model(hf_config, position="sinusoidal", sinusoidal_timescales="paper")
    arch_names = hf_config.get("architectures") or ["MarianMTModel"]
    return Architecture(model=model, task="seq2seq", hf_class=arch_names[0])


def _names(cfg: ModelConfig) -> Iterator[tuple[ParamPath, str, str]]:
    yield ("embedder", "token_embed", "embedding"), "model.shared.weight", "copy"
    yield ("final_logits_bias",), "final_logits_bias", "row"
    yield from bart.layer_names(cfg)


def import_params(
    hf_config: dict, arch: Architecture, read: ReadTensor
) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
    """Every (unrolled) param of `arch.model` with a thunk reading it from the HF tensors."""
    cfg = arch.model
    for path, name, kind in _names(cfg):
        yield path, lambda name=name, kind=kind: bart.convert(cfg, kind, read(name))


def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """[P, D] float32: Hugging Face's MarianSinusoidalPositionalEmbedding weight (computed in
    float64 as it is)."""
    j = np.arange(dim)
    angles = np.arange(num_positions)[:, None] / np.power(10000.0, 2 * (j // 2) / dim)[None]
    return np.concatenate([np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])], 1).astype(
        np.float32)


def export(arch: Architecture, params: dict) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
    """The MarianMTModel config.json and its tensors (tied copies and positions included)."""
    cfg = arch.model
    if not (cfg.position == "sinusoidal" and cfg.sinusoidal_timescales == "paper"
            and cfg.final_logits_bias and not cfg.embed_norm and not cfg.pre_ln):
        raise UnsupportedConfig("only Marian-shaped encoder-decoders export as model_type "
                                "'marian'")
    hf_config = {"model_type": "marian", "architectures": ["MarianMTModel"],
                 **bart.common_config(cfg), "share_encoder_decoder_embeddings": True,
                 "decoder_vocab_size": cfg.vocab_size}

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        for path, name, kind in _names(cfg):
            value = bart.unconvert(kind, bart.lookup(params, path))
            yield name, value
            if name == "model.shared.weight":
                for copy in ("model.encoder.embed_tokens.weight",
                             "model.decoder.embed_tokens.weight", "lm_head.weight"):
                    yield copy, value
        table = sinusoid_table(cfg.max_len, cfg.d_model)
        yield "model.encoder.embed_positions.weight", table
        yield "model.decoder.embed_positions.weight", table

    return hf_config, tensors()
