"""BERT and RoBERTa encoders with their heads <-> this project's BERT models (`models/bert.py`).

The module itself is the `HFFamily` (see family.py) for `model_type` "bert" and "roberta".

| Hugging Face class (Bert…/Roberta…) | task          | project params (top level)             |
|-------------------------------------|---------------|----------------------------------------|
| …Model                              | bert_pretrain | bert (mlm and nsp fresh)               |
| BertForPreTraining                  | bert_pretrain | bert, mlm, nsp                         |
| …ForMaskedLM                        | bert_pretrain | bert, mlm (pooler and nsp fresh if absent) |
| …ForSequenceClassification          | classify      | bert, classifier                       |
| …ForTokenClassification             | tagging       | bert, tagger (pooler fresh)            |
| …ForQuestionAnswering               | qa            | bert, span (pooler fresh)              |

"Fresh" parameters are the ones the Hugging Face class lacks but the project's model has; they
are initialized as the project's initializers would (normal(initializer_range) kernels, zero
biases, unit norm scales, seeded by their path) and are not exported. RoBERTa's
classification head (dense + tanh on <s>, then out_proj) is the project's pooler + classifier:
the same function at inference (RoBERTa also drops out the <s> features before its dense
layer; the project's pooler does not). RoBERTa's learned positions start at pad_token_id + 1:
the project's position table is the Hugging Face one without its first pad_token_id + 1 rows
(zeros on export), which gives the same embeddings for right-padded inputs.

Weight layouts: a torch `Linear` weight is [out, in]; the project's dense kernels are
[in, out], attention kernels [D, N, H] (query/key/value) and [N, H, D] (out).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from transformer_jax.errors import UserError
from transformer_jax.interop.family import Architecture, ParamPath, ReadTensor, UnsupportedConfig
from transformer_jax.models import bert
from transformer_jax.models.config import PRESETS, ModelConfig

model_types = ("bert", "roberta")

_PREFIX = {"bert": "Bert", "roberta": "Roberta"}
# Hugging Face class name after its "Bert"/"Roberta" prefix -> the project's task.
_TASKS = {
    "Model": "bert_pretrain",
    "ForPreTraining": "bert_pretrain",
    "ForMaskedLM": "bert_pretrain",
    "ForSequenceClassification": "classify",
    "ForTokenClassification": "tagging",
    "ForQuestionAnswering": "qa",
}
# The class an export writes for a task (when the run's own class is of another task).
_EXPORT_CLASS = {"bert_pretrain": "ForPreTraining", "classify": "ForSequenceClassification",
                 "tagging": "ForTokenClassification", "qa": "ForQuestionAnswering"}
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu"}
_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


@dataclasses.dataclass(frozen=True)
class _Link:
    """One project parameter and the Hugging Face tensor it is.

    Attributes:
      path: the project's (unrolled) parameter path.
      name: the Hugging Face tensor name.
      kind: the layout change: "copy", "linear" ([out, in] <-> [in, out]), "heads_in"
        ([N*H, D] <-> [D, N, H]), "heads_bias" ([N*H] <-> [N, H]), "heads_out"
        ([D, N*H] <-> [N, H, D]) or "positions" (the table without its first rows).
      exported: part of the Hugging Face class (else only read when the checkpoint has it).
    """

    path: ParamPath
    name: str
    kind: str = "copy"
    exported: bool = True


def architecture(hf_config: dict) -> Architecture:
    """The project's BERT model and task for a BERT/RoBERTa `config.json` (see family.py)."""
    model_type, hf_class, suffix = _hf_class(hf_config)
    task = _TASKS[suffix]
    refusals = (
        ("position_embedding_type", hf_config.get("position_embedding_type", "absolute"),
         lambda v: v == "absolute", "only absolute learned positions exist here"),
        ("is_decoder", hf_config.get("is_decoder", False), lambda v: not v,
         "the project's BERT is a bidirectional encoder"),
        ("add_cross_attention", hf_config.get("add_cross_attention", False), lambda v: not v,
         "the project's BERT has no cross-attention"),
        ("hidden_act", hf_config.get("hidden_act", "gelu"),
         lambda v: isinstance(v, str) and v in _ACTIVATIONS,
         f"supported: {sorted(_ACTIVATIONS)}"),
    )
    for field, value, ok, why in refusals:
        if not ok(value):
            raise UnsupportedConfig(f"config.json {field}={value!r} is not supported ({why})")
    mlm = suffix in ("ForPreTraining", "ForMaskedLM")
    if mlm and not hf_config.get("tie_word_embeddings", True):
        raise UnsupportedConfig(f"config.json tie_word_embeddings=False is not supported for "
                                f"{hf_class} (the project's MLM decoder is the embedding table)")
    if model_type == "roberta" and mlm and hf_config.get("hidden_act", "gelu") != "gelu":
        raise UnsupportedConfig(
            f"config.json hidden_act={hf_config['hidden_act']!r} is not supported for "
            f"{hf_class} (its LM head uses exact gelu whatever hidden_act says; the project's "
            "MLM head uses hidden_act)")
    num_labels = _num_labels(hf_config)
    if suffix == "ForSequenceClassification":
        problem = hf_config.get("problem_type")
        if problem in ("regression", "multi_label_classification") or num_labels == 1:
            raise UnsupportedConfig(
                f"config.json problem_type={problem!r} with num_labels={num_labels} is not "
                "supported (the classify task trains single-label softmax classification)")
    if suffix == "ForQuestionAnswering" and num_labels != 2:
        raise UnsupportedConfig(f"config.json num_labels={num_labels} is not supported for "
                                f"{hf_class} (span logits are start and end: 2 labels)")
    pad = int(hf_config.get("pad_token_id") or 0)
    offset = _position_offset(model_type, pad)
    max_len = int(hf_config.get("max_position_embeddings", 512)) - offset
    if max_len < 1:
        raise UnsupportedConfig(f"config.json max_position_embeddings="
                                f"{hf_config.get('max_position_embeddings')} leaves no position "
                                f"after RoBERTa's first {offset} (pad_token_id + 1) rows")
    fields = dict(
        family="bert",
        vocab_size=int(hf_config["vocab_size"]),
        max_len=max_len,
        num_layers=int(hf_config["num_hidden_layers"]),
        d_model=int(hf_config["hidden_size"]),
        num_heads=int(hf_config["num_attention_heads"]),
        mlp_dim=int(hf_config["intermediate_size"]),
        activation=_ACTIVATIONS[hf_config.get("hidden_act", "gelu")],
        norm="layernorm",
        norm_eps=float(hf_config.get("layer_norm_eps", 1e-12)),
        pre_ln=False,
        final_norm=False,
        embed_norm=True,
        position="learned",
        type_vocab_size=int(hf_config.get("type_vocab_size", 2)),
        use_bias=True,
        tie_embeddings=True,
        dropout_rate=float(hf_config.get("hidden_dropout_prob", 0.1)),
        attention_dropout_rate=float(hf_config.get("attention_probs_dropout_prob", 0.1)),
        init_std=float(hf_config.get("initializer_range", 0.02)),
        pad_id=pad,
        scan_layers=False,
    )
    if fields["d_model"] % fields["num_heads"]:
        raise UnsupportedConfig(f"config.json hidden_size={fields['d_model']} is not a multiple "
                                f"of num_attention_heads={fields['num_heads']}")
    model = ModelConfig(**fields, preset=_preset(fields))
    return Architecture(model=model, task=task,
                        num_labels=num_labels if task in ("classify", "tagging") else None,
                        hf_class=hf_class)


def import_params(
    hf_config: dict, arch: Architecture, read: ReadTensor
) -> Iterator[tuple[ParamPath, Callable[[], np.ndarray]]]:
    """Every leaf of the project's unrolled params with a thunk reading and converting it.

    `read(name)` raises KeyError or UserError for a tensor the checkpoint lacks: a part the
    Hugging Face class does not have (e.g. BertForMaskedLM's pooler and NSP head) is then
    initialized fresh, and a LayerNorm saved under the old names (`gamma`, `beta`) is read
    under those.
    """
    model_type, cfg = hf_config["model_type"], arch.model
    offset = _position_offset(model_type, cfg.pad_id)
    shapes = _param_shapes(arch)
    links = {link.path: link for link in _links(model_type, arch.hf_class, cfg)}
    assert set(links) <= set(shapes), sorted(set(links) - set(shapes))
    for path, shape in shapes.items():
        if path in links:
            yield path, _import_thunk(links[path], shape, cfg, offset, read)
        else:
            yield path, lambda path=path, shape=shape: _fresh(path, shape, cfg.init_std)


def export(arch: Architecture, params: dict) -> tuple[dict, Iterator[tuple[str, np.ndarray]]]:
    """The Hugging Face config.json dict and tensors of a project BERT run (see family.py).

    The class written is the run's own (`arch.hf_class`) when it belongs to the run's task,
    else the task's class of the same family (BertForPreTraining, …ForSequenceClassification,
    …ForTokenClassification, …ForQuestionAnswering).
    """
    cfg = arch.model
    _check_exportable(cfg)
    model_type = "roberta" if arch.hf_class.startswith(_PREFIX["roberta"]) else "bert"
    prefix = _PREFIX[model_type]
    suffix = arch.hf_class[len(prefix):]
    if _TASKS.get(suffix) != arch.task:
        if arch.task not in _EXPORT_CLASS:
            raise UserError(f"task {arch.task!r} has no Hugging Face BERT class; exportable "
                            f"tasks: {sorted(_EXPORT_CLASS)}")
        suffix = _EXPORT_CLASS[arch.task]
    hf_class = prefix + suffix
    offset = _position_offset(model_type, cfg.pad_id)
    hf_config = {
        "architectures": [hf_class],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.mlp_dim,
        "hidden_act": _HF_ACTIVATIONS[cfg.activation],
        "hidden_dropout_prob": cfg.dropout_rate,
        "attention_probs_dropout_prob": cfg.attention_dropout_rate,
        "max_position_embeddings": cfg.max_len + offset,
        "type_vocab_size": max(cfg.type_vocab_size, 1),
        "initializer_range": cfg.init_std,
        "layer_norm_eps": cfg.norm_eps,
        "pad_token_id": cfg.pad_id,
        "tie_word_embeddings": True,
    }
    if arch.num_labels is not None or suffix == "ForQuestionAnswering":
        labels = 2 if arch.num_labels is None else arch.num_labels
        hf_config["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
        hf_config["label2id"] = {f"LABEL_{i}": i for i in range(labels)}

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        for link in _links(model_type, hf_class, cfg):
            if link.exported:
                yield link.name, _to_hf(link.kind, _leaf(params, link.path), cfg, offset)
        if not cfg.type_vocab_size:  # Hugging Face always adds a token type: add nothing
            pre = "" if suffix == "Model" else f"{model_type}."
            yield (f"{pre}embeddings.token_type_embeddings.weight",
                   np.zeros((1, cfg.d_model), np.float32))

    return hf_config, tensors()


# The mapping -------------------------------------------------------------------------------


def _links(model_type: str, hf_class: str, cfg: ModelConfig) -> list[_Link]:
    """Every Hugging Face tensor of `hf_class` (and the optional ones) and its parameter."""
    suffix = hf_class[len(_PREFIX[model_type]):]
    # A base model's tensors carry no prefix; a head model's carry "bert." / "roberta.".
    pre = "" if suffix == "Model" else f"{model_type}."
    emb = ("bert", "embedder")
    links = [
        _Link((*emb, "token_embed", "embedding"), f"{pre}embeddings.word_embeddings.weight"),
        _Link((*emb, "position_embed", "embedding"),
              f"{pre}embeddings.position_embeddings.weight", "positions"),
        *_norm((*emb, "embed_norm"), f"{pre}embeddings.LayerNorm"),
    ]
    if cfg.type_vocab_size:
        links.append(_Link((*emb, "type_embed", "embedding"),
                           f"{pre}embeddings.token_type_embeddings.weight"))
    for i in range(cfg.num_layers):
        hf, ours = f"{pre}encoder.layer.{i}.", ("bert", "encoder", f"layers_{i}")
        attn = (*ours, "self_attention")
        for proj in ("query", "key", "value"):
            links += [_Link((*attn, proj, "kernel"), f"{hf}attention.self.{proj}.weight",
                            "heads_in"),
                      _Link((*attn, proj, "bias"), f"{hf}attention.self.{proj}.bias",
                            "heads_bias")]
        links += [
            _Link((*attn, "out", "kernel"), f"{hf}attention.output.dense.weight", "heads_out"),
            _Link((*attn, "out", "bias"), f"{hf}attention.output.dense.bias"),
            *_norm((*ours, "self_attention_norm"), f"{hf}attention.output.LayerNorm"),
            *_dense((*ours, "mlp", "wi"), f"{hf}intermediate.dense"),
            *_dense((*ours, "mlp", "wo"), f"{hf}output.dense"),
            *_norm((*ours, "mlp_norm"), f"{hf}output.LayerNorm"),
        ]
    pooler = ("bert", "pooler", "dense")
    roberta = model_type == "roberta"
    if suffix in ("Model", "ForPreTraining"):
        links += _dense(pooler, f"{pre}pooler.dense")
    if suffix == "ForMaskedLM":
        links += _dense(pooler, f"{pre}pooler.dense", exported=False)
        if not roberta:
            links += _dense(("nsp", "dense"), "cls.seq_relationship", exported=False)
    if suffix in ("ForPreTraining", "ForMaskedLM"):
        head, norm = ("lm_head.", "lm_head.layer_norm") if roberta else (
            "cls.predictions.transform.", "cls.predictions.transform.LayerNorm")
        links += [*_dense(("mlm", "transform"), f"{head}dense"),
                  *_norm(("mlm", "transform_norm"), norm),
                  _Link(("mlm", "bias"), "lm_head.bias" if roberta else "cls.predictions.bias")]
    if suffix == "ForPreTraining":
        links += _dense(("nsp", "dense"), "cls.seq_relationship")
    if suffix == "ForSequenceClassification":
        if roberta:  # RobertaClassificationHead: dense + tanh on <s> = the pooler, then out_proj
            links += [*_dense(pooler, "classifier.dense"),
                      *_dense(("classifier", "dense"), "classifier.out_proj")]
        else:
            links += [*_dense(pooler, "bert.pooler.dense"),
                      *_dense(("classifier", "dense"), "classifier")]
    if suffix == "ForTokenClassification":
        links += _dense(("tagger", "dense"), "classifier")
    if suffix == "ForQuestionAnswering":
        links += _dense(("span", "dense"), "qa_outputs")
    return links


def _dense(path: ParamPath, name: str, exported: bool = True) -> list[_Link]:
    """A torch Linear `name` as the project's dense layer at `path`."""
    return [_Link((*path, "kernel"), f"{name}.weight", "linear", exported),
            _Link((*path, "bias"), f"{name}.bias", "copy", exported)]


def _norm(path: ParamPath, name: str) -> list[_Link]:
    """A torch LayerNorm `name` as the project's LayerNorm at `path`."""
    return [_Link((*path, "scale"), f"{name}.weight"), _Link((*path, "bias"), f"{name}.bias")]


def _to_project(kind: str, x: np.ndarray, cfg: ModelConfig, offset: int) -> np.ndarray:
    """A Hugging Face tensor in the project's layout."""
    d, n, h = cfg.d_model, cfg.num_heads, cfg.dim_per_head
    x = np.asarray(x, np.float32)
    if kind == "linear":
        x = x.T
    elif kind == "heads_in":
        x = x.T.reshape(d, n, h)
    elif kind == "heads_bias":
        x = x.reshape(n, h)
    elif kind == "heads_out":
        x = x.T.reshape(n, h, d)
    elif kind == "positions":
        x = x[offset:offset + cfg.max_len]
    return np.ascontiguousarray(x)


def _to_hf(kind: str, x: np.ndarray, cfg: ModelConfig, offset: int) -> np.ndarray:
    """A project parameter in the Hugging Face layout (the inverse of `_to_project`)."""
    d, n, h = cfg.d_model, cfg.num_heads, cfg.dim_per_head
    x = np.asarray(x, np.float32)
    if kind == "linear":
        x = x.T
    elif kind == "heads_in":
        x = x.reshape(d, n * h).T
    elif kind == "heads_bias":
        x = x.reshape(n * h)
    elif kind == "heads_out":
        x = x.reshape(n * h, d).T
    elif kind == "positions":
        x = np.concatenate([np.zeros((offset, d), np.float32), x])
    return np.ascontiguousarray(x)


def _import_thunk(link: _Link, shape: tuple[int, ...], cfg: ModelConfig, offset: int,
                  read: ReadTensor) -> Callable[[], np.ndarray]:
    """Reads `link.name` (or its legacy gamma/beta name) and converts it; an optional tensor
    the checkpoint lacks comes out fresh."""

    def thunk() -> np.ndarray:
        names = [link.name]
        for new, old in ((".LayerNorm.weight", ".LayerNorm.gamma"),
                         (".LayerNorm.bias", ".LayerNorm.beta")):
            if link.name.endswith(new):
                names.append(link.name[: -len(new)] + old)
        absent = None
        for name in names:
            try:
                value = _to_project(link.kind, read(name), cfg, offset)
            except (KeyError, UserError) as e:  # how a reader says the name is absent
                absent = absent or e
                continue
            if value.shape != shape:
                raise UserError(f"checkpoint tensor {name!r} has shape {value.shape} in the "
                                f"project's layout, but config.json implies {shape}")
            return value
        if not link.exported:
            return _fresh(link.path, shape, cfg.init_std)
        raise absent

    return thunk


def _fresh(path: ParamPath, shape: tuple[int, ...], std: float) -> np.ndarray:
    """A parameter the checkpoint lacks, as the project initializes it: normal(std) kernels
    and embeddings, unit scales, zero biases; seeded by its path (any order, same values)."""
    if path[-1] == "scale":
        return np.ones(shape, np.float32)
    if path[-1] == "bias":
        return np.zeros(shape, np.float32)
    rng = np.random.default_rng(zlib.crc32("/".join(path).encode()))
    return rng.normal(0.0, std, shape).astype(np.float32)


def _model_for(arch: Architecture) -> nn.Module:
    """The project's model that holds `arch`'s weights (what the task's build_model gives)."""
    cfg = arch.model
    if arch.task == "bert_pretrain":
        return bert.BertForPretraining(cfg)
    if arch.task == "classify":
        return bert.BertForSequenceClassification(cfg, arch.num_labels)
    if arch.task == "tagging":
        return bert.BertForTokenClassification(cfg, arch.num_labels)
    return bert.BertForQuestionAnswering(cfg)


def _param_shapes(arch: Architecture) -> dict[ParamPath, tuple[int, ...]]:
    """Every unrolled parameter path of the project's model and its shape (no allocation)."""
    tokens = jnp.zeros((1, 2), jnp.int32)
    shapes = jax.eval_shape(lambda: _model_for(arch).init(jax.random.key(0), tokens))["params"]
    # Boxed (logically partitioned) leaves: read the box's value, which, unlike nn.unbox,
    # applies no sharding constraint (the core calls this inside its mesh).
    flat = traverse_util.flatten_dict(shapes)
    return {path: tuple(getattr(leaf, "value", leaf).shape) for path, leaf in flat.items()}


def _leaf(params: dict, path: ParamPath) -> np.ndarray:
    """The parameter at `path` of a nested params dict."""
    node = params
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise UserError(f"the run's params have no {'/'.join(path)} (is it a BERT run?)")
        node = node[key]
    return np.asarray(node)


def _check_exportable(cfg: ModelConfig) -> None:
    """Raises UnsupportedConfig for a project model a Hugging Face BERT cannot express."""
    want = dict(family="bert", norm="layernorm", pre_ln=False, final_norm=False,
                embed_norm=True, position="learned", use_bias=True, scale_embeddings=False)
    for field, value in want.items():
        if getattr(cfg, field) != value:
            raise UnsupportedConfig(f"model.{field}={getattr(cfg, field)!r} cannot be exported "
                                    f"as a Hugging Face BERT (it needs {value!r})")
    if cfg.activation not in _HF_ACTIVATIONS:
        raise UnsupportedConfig(f"model.activation={cfg.activation!r} cannot be exported as a "
                                f"Hugging Face BERT (supported: {sorted(_HF_ACTIVATIONS)})")
    if cfg.kv_heads != cfg.num_heads or cfg.dim_per_head * cfg.num_heads != cfg.d_model:
        raise UnsupportedConfig(
            f"model.num_kv_heads={cfg.num_kv_heads} / head_dim={cfg.head_dim} cannot be "
            "exported as a Hugging Face BERT (it needs K = N and H = D / N)")


def _hf_class(hf_config: dict) -> tuple[str, str, str]:
    """(model_type, the class name, its suffix after "Bert"/"Roberta"); refuses others."""
    model_type = hf_config.get("model_type")
    if model_type not in _PREFIX:
        raise UnsupportedConfig(f"config.json model_type={model_type!r} is not one of "
                                f"{list(model_types)}")
    prefix = _PREFIX[model_type]
    hf_class = (hf_config.get("architectures") or [prefix + "Model"])[0]
    suffix = hf_class[len(prefix):] if hf_class.startswith(prefix) else None
    if suffix not in _TASKS:
        raise UnsupportedConfig(
            f"config.json architectures[0]={hf_class!r} is not supported (supported: "
            f"{', '.join(prefix + s for s in _TASKS)})")
    return model_type, hf_class, suffix


def _num_labels(hf_config: dict) -> int:
    """A head's label count: id2label's size (what save_pretrained writes), else num_labels."""
    if hf_config.get("id2label"):
        return len(hf_config["id2label"])
    return int(hf_config.get("num_labels", 2))


def _position_offset(model_type: str, pad_id: int) -> int:
    """Rows of the Hugging Face position table before the project's position 0."""
    return pad_id + 1 if model_type == "roberta" else 0


def _preset(fields: dict) -> str:
    """The project preset `fields` equal (shape-wise), else bert_base (all fields override)."""
    for name in ("bert_tiny", "bert_base", "bert_large"):
        preset = PRESETS[name]
        if all(preset.get(k) == v for k, v in fields.items()
               if k in ("vocab_size", "max_len", "num_layers", "d_model", "num_heads",
                        "mlp_dim", "type_vocab_size", "activation", "norm_eps")):
            return name
    return "bert_base"
