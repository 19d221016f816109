"""`ModelConfig`: one frozen dataclass describing any model of the three families.

Every module receives the whole config (Flax lm1b style). Eval and decoding variants are made
with `config.replace(deterministic=True, decode=True)`. Sizes are data: `PRESETS` maps a name
to a config, and `from_preset(name, **overrides)` builds one. The presets reproduce the
published architectures exactly (see docs/architecture.md and tests/models/test_presets.py).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from transformer_jax.errors import UserError
from transformer_jax.models.lora import LoraConfig

Family = Literal["gpt", "bert", "encdec"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of one model.

    Attributes:
      family: "gpt" (decoder-only), "bert" (encoder) or "encdec" (encoder-decoder).
      vocab_size: V, the number of token ids.
      max_len: the longest sequence (learned position table size; KV-cache length).
      num_layers: layers of the (encoder) stack.
      num_decoder_layers: decoder layers of an encoder-decoder (None: same as num_layers).
      d_model: D, the residual stream width.
      num_heads: N, query heads.
      num_kv_heads: K, key/value heads (None: N; K < N is grouped-query attention).
      head_dim: H (None: D // N).
      mlp_dim: F, hidden width of the MLP.
      activation: "gelu" (exact erf), "gelu_tanh", "relu", "silu", "swiglu", "geglu" (erf
        gate) or "geglu_tanh" (tanh-GELU gate: T5 v1.1 "gated-gelu").
      norm: "layernorm" or "rmsnorm".
      norm_eps: epsilon of every norm.
      pre_ln: pre-LN blocks (GPT-2) when True, post-LN (BERT, original Transformer) when False.
      final_norm: a norm after the last block (needed for pre-LN stacks).
      embed_norm: a norm right after the embeddings (BERT).
      position: "learned", "sinusoidal", "rope", "relative" (T5's bucketed relative attention
        bias, models/relative_position.py) or "none".
      rope_theta: RoPE base frequency.
      type_vocab_size: token-type (segment) embeddings; 0 disables them.
      use_bias: biases on all dense projections.
      tie_embeddings: the output projection reuses the input embedding.
      scale_embeddings: multiply embeddings by sqrt(D) (original Transformer).
      dropout_rate: dropout on embeddings, residual branches and MLP.
      attention_dropout_rate: dropout on attention probabilities.
      attention_impl: "xla" or "cudnn", passed to `jax.nn.dot_product_attention`.
      dtype: compute dtype ("float32", "bfloat16"); parameters stay in `param_dtype`.
      param_dtype: parameter dtype.
      scan_layers: stack layers with `nn.scan` (one compiled layer) instead of unrolling.
      remat_policy: "none", "full", "dots", "dots_with_no_batch_dims" (see models/stack.py).
      init_std: stddev of the normal initializer of embeddings and projections.
      norm_two_pass: norms compute the variance as mean((x - mean)^2) (torch's form) instead
        of mean(x^2) - mean^2 (Flax's fast form, off by ~3e-3 when |mean| >> std).
      scaled_attention: divide q.k by sqrt(H) (False: T5's unscaled logits).
      relative_buckets: buckets of the relative attention bias (position="relative").
      relative_max_distance: the distance beyond which relative positions share a bucket.
      sinusoidal_timescales: "t2t" (10000^(-i/(D/2-1)), tensor2tensor) or "paper"
        (10000^(-2i/D), "Attention Is All You Need" and Marian); see position.sinusoidal.
      position_offset: learned positions are looked up at position + offset, in a table of
        max_len + offset rows (BART: 2).
      decoder_embedder: the decoder of an encoder-decoder has its own position table and
        embedding norm (BART); the token table stays shared.
      final_logits_bias: a learned [V] bias added to the encoder-decoder's logits (BART,
        Marian).
      scale_decoder_output: multiply the decoder output by D**-0.5 before the output
        projection (T5 v1.0).
      pad_id: the padding token id: masked out of attention, loss weights and lengths
        (RoBERTa: 1; T5 and Marian decoders also start with it).
      decoder_start_id: the first decoder input id (None: the tokenizer's bos; T5 and Marian
        start with the pad id).
      deterministic: disable dropout (eval, decode).
      decode: keep a KV cache and process tokens incrementally.
      preset: the preset name this config came from (recorded in checkpoints).
      lora: LoRA adapters on the dense layers it targets (None: none; models/lora.py).
    """

    family: Family = "gpt"
    vocab_size: int = 8192
    max_len: int = 256
    num_layers: int = 4
    num_decoder_layers: int | None = None
    d_model: int = 256
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    mlp_dim: int = 1024
    activation: str = "gelu_tanh"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    pre_ln: bool = True
    final_norm: bool = True
    embed_norm: bool = False
    position: str = "learned"
    rope_theta: float = 10_000.0
    type_vocab_size: int = 0
    use_bias: bool = True
    tie_embeddings: bool = True
    scale_embeddings: bool = False
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    attention_impl: str = "xla"
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"
    init_std: float = 0.02
    norm_two_pass: bool = False
    scaled_attention: bool = True
    relative_buckets: int = 32
    relative_max_distance: int = 128
    sinusoidal_timescales: str = "t2t"
    position_offset: int = 0
    decoder_embedder: bool = False
    final_logits_bias: bool = False
    scale_decoder_output: bool = False
    pad_id: int = 0
    decoder_start_id: int | None = None
    deterministic: bool = False
    decode: bool = False
    preset: str = ""
    lora: LoraConfig | None = None

    def __post_init__(self) -> None:
        checks = {
            "family": (self.family, ("gpt", "bert", "encdec")),
            "activation": (
                self.activation,
                ("gelu", "gelu_tanh", "relu", "silu", "swiglu", "geglu", "geglu_tanh"),
            ),
            "norm": (self.norm, ("layernorm", "rmsnorm")),
            "position": (self.position, ("learned", "sinusoidal", "rope", "relative", "none")),
            "sinusoidal_timescales": (self.sinusoidal_timescales, ("t2t", "paper")),
            "attention_impl": (self.attention_impl, ("xla", "cudnn")),
            "remat_policy": (
                self.remat_policy,
                ("none", "full", "dots", "dots_with_no_batch_dims"),
            ),
        }
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise UserError(f"model.{key}={value!r} is not one of {list(allowed)}")
        if self.num_heads % self.kv_heads:
            raise UserError(
                f"model.num_heads={self.num_heads} must be a multiple of "
                f"model.num_kv_heads={self.kv_heads}"
            )
        if self.head_dim is None and self.d_model % self.num_heads:
            raise UserError(
                f"model.d_model={self.d_model} is not divisible by "
                f"model.num_heads={self.num_heads}: set model.head_dim explicitly"
            )
        if self.position == "relative" and self.family != "encdec":
            raise UserError("model.position='relative' needs family='encdec' (T5)")
        if self.position == "rope" and self.dim_per_head % 2:
            raise UserError(f"RoPE needs an even head dim, got {self.dim_per_head}")

    # Derived sizes -----------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        """K, the number of key/value heads."""
        return self.num_kv_heads or self.num_heads

    @property
    def dim_per_head(self) -> int:
        """H, the per-head width."""
        return self.head_dim or self.d_model // self.num_heads

    @property
    def decoder_layers(self) -> int:
        """Layers of the decoder stack of an encoder-decoder."""
        return self.num_decoder_layers or self.num_layers

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def params_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (e.g. `deterministic=True, decode=True`)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_GPT2 = dict(
    family="gpt",
    vocab_size=50257,
    max_len=1024,
    activation="gelu_tanh",
    norm="layernorm",
    norm_eps=1e-5,
    pre_ln=True,
    final_norm=True,
    position="learned",
    use_bias=True,
    tie_embeddings=True,
    dropout_rate=0.1,
    attention_dropout_rate=0.1,
)
_BERT = dict(
    family="bert",
    vocab_size=30522,
    max_len=512,
    type_vocab_size=2,
    activation="gelu",
    norm="layernorm",
    norm_eps=1e-12,
    pre_ln=False,
    final_norm=False,
    embed_norm=True,
    position="learned",
    use_bias=True,
    tie_embeddings=True,
    dropout_rate=0.1,
    attention_dropout_rate=0.1,
)
_TRANSFORMER = dict(
    family="encdec",
    vocab_size=37000,
    max_len=256,
    activation="relu",
    norm="layernorm",
    norm_eps=1e-6,
    pre_ln=False,
    final_norm=False,
    position="sinusoidal",
    sinusoidal_timescales="paper",  # 10000^(-2i/D), as the paper and Marian
    use_bias=True,
    tie_embeddings=True,
    scale_embeddings=True,
    dropout_rate=0.1,
    attention_dropout_rate=0.0,
)

PRESETS: dict[str, dict] = {
    # GPT family. gpt_tiny is the CPU default (the quickstart): 2 layers (4 until 2026-12-01),
    # because at its ~10-minute CPU budget more tokens beat more depth (README "Results").
    "gpt_tiny": dict(
        _GPT2, vocab_size=8192, max_len=256, num_layers=2, d_model=256, num_heads=4,
        mlp_dim=1024, dropout_rate=0.0, attention_dropout_rate=0.0,
    ),
    "gpt2_small": dict(_GPT2, num_layers=12, d_model=768, num_heads=12, mlp_dim=3072),
    "gpt2_medium": dict(_GPT2, num_layers=24, d_model=1024, num_heads=16, mlp_dim=4096),
    "gpt2_large": dict(_GPT2, num_layers=36, d_model=1280, num_heads=20, mlp_dim=5120),
    "gpt2_xl": dict(_GPT2, num_layers=48, d_model=1600, num_heads=25, mlp_dim=6400),
    # A modern ~1B decoder (RoPE, RMSNorm, SwiGLU, GQA, no biases) for accelerators.
    "gpt_1b": dict(
        family="gpt", vocab_size=32768, max_len=2048, num_layers=16, d_model=2048,
        num_heads=16, num_kv_heads=8, mlp_dim=5632, activation="swiglu", norm="rmsnorm",
        norm_eps=1e-6, position="rope", use_bias=False, tie_embeddings=False,
        remat_policy="dots_with_no_batch_dims", dtype="bfloat16",
    ),
    # BERT family.
    # bert_tiny is the CPU default (bert_stdlib.py): a 4096-piece vocabulary, 128 positions.
    "bert_tiny": dict(
        _BERT, vocab_size=4096, max_len=128, num_layers=2, d_model=128, num_heads=2,
        mlp_dim=512,
    ),
    "bert_base": dict(_BERT, num_layers=12, d_model=768, num_heads=12, mlp_dim=3072),
    "bert_large": dict(_BERT, num_layers=24, d_model=1024, num_heads=16, mlp_dim=4096),
    # Encoder-decoder family ("Attention Is All You Need").
    # transformer_tiny is the CPU default (seq2seq_stdlib.py), with a 4096-piece vocabulary.
    "transformer_tiny": dict(
        _TRANSFORMER, vocab_size=4096, num_layers=2, d_model=128, num_heads=4, mlp_dim=512,
    ),
    "transformer_base": dict(
        _TRANSFORMER, num_layers=6, d_model=512, num_heads=8, mlp_dim=2048,
    ),
    "transformer_big": dict(
        _TRANSFORMER, num_layers=6, d_model=1024, num_heads=16, mlp_dim=4096, dropout_rate=0.3,
    ),
}


def from_preset(name: str, **overrides) -> ModelConfig:
    """Builds the `ModelConfig` of a preset, with some fields overridden.

    Args:
      name: a key of `PRESETS`.
      **overrides: `ModelConfig` fields to change (e.g. `vocab_size=8192, scan_layers=False`).

    Returns:
      The frozen config, with `preset=name`.
    """
    if name not in PRESETS:
        raise UserError(f"model.preset={name!r} is unknown; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown model config key(s) {unknown}; valid keys: {sorted(fields)}")
    return ModelConfig(**{**PRESETS[name], **overrides, "preset": name})


def model_config_from(section) -> ModelConfig:
    """Builds a `ModelConfig` from an experiment config's `model` section.

    Args:
      section: a mapping (e.g. `ml_collections.ConfigDict`) with `preset` and optional
        `ModelConfig` fields; fields left None keep the preset's value, except `dtype`,
        which defaults to bfloat16 on accelerators, and `scan_layers`, which defaults to
        False (unrolled) on CPU.
    """
    values = dict(section)
    preset = values.pop("preset")
    overrides = {k: v for k, v in values.items() if v is not None}
    if "dtype" not in overrides and PRESETS.get(preset, {}).get("dtype", "float32") == "float32":
        # Mixed precision by default where it pays: bf16 compute on GPU/TPU (params stay
        # float32); float32 on CPU, where bf16 is not faster (docs/architecture.md, measured facts).
        overrides["dtype"] = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    if "scan_layers" not in overrides and jax.default_backend() == "cpu":
        # On CPU unrolled layers train ~1.1-1.3x and decode ~1.5x faster than nn.scan
        # (BENCHMARKS.md); compiling L layers instead of one matters only on accelerators.
        overrides["scan_layers"] = False
    return from_preset(preset, **overrides)


# Fields that change parameter shapes: a checkpoint can only be resumed by a config that
# agrees on all of them.
SHAPE_FIELDS = (
    "family", "vocab_size", "max_len", "num_layers", "num_decoder_layers", "d_model",
    "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "activation", "norm", "position",
    "type_vocab_size", "use_bias", "tie_embeddings", "embed_norm", "final_norm",
    "scan_layers", "param_dtype", "relative_buckets", "position_offset", "decoder_embedder",
    "final_logits_bias",
)
