"""LoRA -> Hugging Face PEFT: `PeftModel.from_pretrained(base export, adapter dir)` computes
the project's LoRA model (GPT-2 with its fused c_attn, and BERT), float32."""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from tests.interop.conftest import tokens, torch, transformers
from transformer_jax import make_mesh
from transformer_jax.errors import UserError
from transformer_jax.interop import api, models
from transformer_jax.interop import peft as peft_export
from transformer_jax.models.lora import LoraConfig

peft = pytest.importorskip("peft")
TOL = 1e-4
# q and v, not k: GPT-2's fused c_attn gets a rank-2r adapter with a zero key block.
LORA = LoraConfig(rank=2, alpha=6.0, dropout=0.0, targets=(r"(query|value|out|wi|wo)/kernel$",))


def _with_random_adapters(directory):
    """(LoRA model, params): the HF directory's weights plus random (nonzero) adapters."""
    checkpoint, family, arch = api.open_hf(directory)
    model, inputs = models.model_for(arch, arch.model.replace(deterministic=True, lora=LORA))
    base = api.import_into(checkpoint, family, arch,
                           lambda rng: models.model_for(arch)[0].init(rng, **inputs)["params"],
                           make_mesh(1, 1, 1, devices=jax.devices()[:1]))
    fresh = nn.unbox(jax.eval_shape(lambda rng: model.init(rng, **inputs)["params"],
                                    jax.random.key(0)))  # shapes only: nothing compiles
    leaves, treedef = jax.tree_util.tree_flatten_with_path(fresh)
    keys = iter(jax.random.split(jax.random.key(1), len(leaves)))
    flat_base = dict(jax.tree_util.tree_flatten_with_path(nn.unbox(base))[0])
    out = [0.3 * jax.random.normal(next(keys), x.shape) if "lora" in jax.tree_util.keystr(p)
           else flat_base[p] for p, x in leaves]
    return model, jax.tree.unflatten(treedef, out)


def _compare(model, params, hf_class, out, ids, **kwargs):
    base = peft_export.save_peft(model, params, None, out)
    config = json.loads((out / "adapter_config.json").read_text())
    hf = getattr(transformers, hf_class).from_pretrained(base).eval()
    with torch.no_grad():
        plain = hf(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
        wrapped = peft.PeftModel.from_pretrained(hf, str(out)).eval()  # adapts hf in place
        theirs = wrapped(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    ours = np.asarray(model.apply({"params": params}, ids, **kwargs))  # eager: no compile
    assert np.abs(ours - theirs).max() <= TOL
    assert np.abs(ours - plain).max() > 100 * TOL  # the adapters matter
    return config


def test_gpt2_lora_equals_peft_over_the_export(gpt2, tmp_path):
    directory, _ = gpt2
    model, params = _with_random_adapters(directory)
    ids = tokens(model.config.vocab_size)
    config = _compare(model, params, "GPT2LMHeadModel", tmp_path / "adapter", ids)
    assert config["fan_in_fan_out"] and config["r"] == 2 and config["lora_alpha"] == 6.0
    assert config["rank_pattern"] == {f"transformer.h.{i}.attn.c_attn": 4 for i in range(2)}
    assert "transformer.h.1.mlp.c_fc" in config["target_modules"]
    with pytest.raises(UserError, match="already exists and is not empty"):
        peft_export.save_peft(model, params, None, tmp_path / "adapter")


def test_bert_lora_equals_peft_over_the_export(tmp_path):
    hf_config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        max_position_embeddings=24, num_labels=3)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(hf_config).save_pretrained(tmp_path / "hf")
    model, params = _with_random_adapters(tmp_path / "hf")
    ids = tokens(99, (2, 10))
    config = _compare(model, params, "BertForSequenceClassification", tmp_path / "adapter", ids)
    assert "bert.encoder.layer.0.attention.self.query" in config["target_modules"]
    assert not config["rank_pattern"] and not config["fan_in_fan_out"]
