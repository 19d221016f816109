"""Configs and directories the converter cannot express exactly: one clear line each."""

import json

import pytest

from transformer_jax.errors import UserError
from transformer_jax.interop import api, registry
from transformer_jax.interop.family import UnsupportedConfig

GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 64,
        "n_positions": 32, "n_embd": 16, "n_layer": 1, "n_head": 2}
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 64,
         "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
         "num_attention_heads": 2, "max_position_embeddings": 32}


@pytest.mark.parametrize("base, change, field", [
    (GPT2, {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    (GPT2, {"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
    (GPT2, {"scale_attn_weights": False}, "scale_attn_weights"),
    (GPT2, {"activation_function": "swish"}, "activation_function"),
    (GPT2, {"add_cross_attention": True}, "add_cross_attention"),
    (GPT2, {"architectures": ["GPT2ForSequenceClassification"]}, "architectures"),
    (LLAMA, {"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "rope type"),
    (LLAMA, {"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope type"),
    (LLAMA, {"attention_bias": True}, "attention_bias"),
    (LLAMA, {"mlp_bias": True}, "mlp_bias"),
    (LLAMA, {"hidden_act": "gelu"}, "hidden_act"),
    (LLAMA, {"sliding_window": 4096}, "sliding_window"),
    (LLAMA, {"model_type": "qwen2"}, "qwen2"),
])
def test_unsupported_fields_are_refused_in_one_line(base, change, field):
    config = {**base, **change}
    with pytest.raises(UnsupportedConfig) as e:
        registry.family_for(config).architecture(config)
    assert field in str(e.value) and "\n" not in str(e.value)


def test_unknown_model_type_lists_supported_ones():
    with pytest.raises(UserError) as e:
        registry.family_for({"model_type": "gptj"})
    message = str(e.value)
    assert "'gptj'" in message and "gpt2" in message and "llama" in message
    assert "\n" not in message


@pytest.mark.parametrize("files, expected", [
    ({}, "config.json does not exist"),
    ({"config.json": "{not json"}, "not valid JSON"),
    ({"config.json": json.dumps(GPT2)}, "has no model.safetensors"),
    ({"config.json": json.dumps(GPT2), "model.safetensors": "garbage"}, "not a readable"),
    ({"config.json": json.dumps({k: v for k, v in GPT2.items() if k != "n_embd"}),
      "model.safetensors.index.json": json.dumps({"weight_map": {"a": "x.safetensors"}})},
     "x.safetensors, which is missing"),
])
def test_bad_directories_are_one_line_errors(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UserError) as e:
        api.open_hf(tmp_path)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_missing_required_key(tmp_path):
    with pytest.raises(UserError, match="no 'n_embd'"):
        registry.family_for(GPT2).architecture({k: v for k, v in GPT2.items() if k != "n_embd"})
