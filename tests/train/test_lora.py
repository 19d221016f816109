"""LoRA: adapters on every family, frozen base weights without optimizer state, exact
resume, and merging into a plain run with the same outputs."""

import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer_jax import run as run_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax.errors import UserError
from transformer_jax.interop import run_dir
from transformer_jax.models.bert import BertForSequenceClassification
from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.models.gpt import GPT
from transformer_jax.models.lora import LoraConfig, is_adapter_path, merge_params
from transformer_jax.run.lora_merge import merge_workdir
from transformer_jax.run.summary import summarize
from transformer_jax.run.workdir import evaluate_workdir, load_run
from transformer_jax.train import lora
from transformer_jax.train import state as state_lib

TINY = dict(num_layers=2, d_model=32, num_heads=2, mlp_dim=64, vocab_size=64, max_len=16)
SETTINGS = LoraConfig(rank=4, alpha=8.0, dropout=0.0,
                      targets=(r"(query|key|value|out)/kernel$", r"mlp/wo/kernel$"))


def _models():
    """(preset, scanned stack, model builder, inputs) of each family."""
    tokens = jnp.asarray(np.random.default_rng(0).integers(1, 64, (2, 8)), jnp.int32)
    yield "gpt_tiny", True, GPT, (tokens,)
    yield "bert_tiny", False, lambda c: BertForSequenceClassification(c, 3), (tokens,)
    yield "transformer_tiny", True, EncoderDecoder, (tokens, tokens)


def _paths(params) -> list[tuple[str, ...]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return [tuple(str(k.key) for k in p) for p, _ in flat]


def test_adapters_on_every_family_start_at_zero_and_merge_exactly():
    for family, scan, build, inputs in _models():
        base_config = from_preset(family, **TINY, scan_layers=scan, deterministic=True)
        base, adapted = build(base_config), build(base_config.replace(lora=SETTINGS))
        base_params = nn.unbox(jax.jit(base.init)(jax.random.key(0), *inputs)["params"])
        params = nn.unbox(jax.jit(adapted.init)(jax.random.key(0), *inputs)["params"])
        base_apply, adapted_apply = jax.jit(base.apply), jax.jit(adapted.apply)
        adapters = [p for p in _paths(params) if is_adapter_path(p)]
        # q, k, v, out and wo in every layer (encdec: self + cross attention in the decoder).
        assert adapters and all(p[-3] in ("query", "key", "value", "out", "wo")
                                for p in adapters), family
        # The base weights are initialized exactly as without LoRA, and B = 0: same output.
        stripped = merge_params(params, SETTINGS.scale)
        for a, b in zip(jax.tree.leaves(nn.unbox(base_params)), jax.tree.leaves(stripped),
                        strict=True):
            np.testing.assert_array_equal(a, b)
        before = base_apply({"params": base_params}, *inputs)
        np.testing.assert_allclose(adapted_apply({"params": params}, *inputs), before,
                                   atol=1e-6)
        # With trained-looking (random) B, the merged plain model gives the adapted outputs.
        keys = iter(jax.random.split(jax.random.key(1), len(adapters)))
        params = jax.tree_util.tree_map_with_path(
            lambda p, x: (0.1 * jax.random.normal(next(keys), x.shape)
                          if tuple(str(k.key) for k in p)[-1] == "b" else x), params)
        want = adapted_apply({"params": params}, *inputs)
        got = base_apply({"params": merge_params(params, SETTINGS.scale)}, *inputs)
        assert float(jnp.max(jnp.abs(want - before))) > 1e-3
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def _losses(workdir):
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == "train"}


def test_lora_trains_adapters_only_resumes_exactly_and_merges(config, tmp_path):
    config.model.scan_layers = True
    config.mesh.update(data=2, fsdp=2, tensor=2)
    config.lora.update(rank=4, dropout=0.1, targets=r"(query|value)/kernel$,wo/kernel$")
    workdir, merged_dir = tmp_path / "lora", tmp_path / "merged"
    run_lib.train_and_evaluate(config, str(workdir))
    straight = _losses(workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")
    run_lib.train_and_evaluate(config, str(workdir))
    assert [_losses(workdir)[s] for s in range(1, 7)] == [straight[s] for s in range(1, 7)]

    run = run_lib.setup_run(config, str(workdir))
    state = run_lib.restore_state(run)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        optimizer, _ = lora.make_optimizer(run.config, 6)
        init_params, _, shardings = run_lib.state_layout(run, run.task.build_model(
            run.model_config), optimizer)
        fresh = state_lib.init_state(init_params, optimizer, jax.random.key(0), shardings)
    labels = jax.tree.leaves(lora.trainable_labels(state.params, run.model_config.lora))
    changed = {}
    for path, new, old, label in zip(_paths(state.params), jax.tree.leaves(state.params),
                                     jax.tree.leaves(fresh.params), labels, strict=True):
        changed[path] = not np.array_equal(new, old)
        assert label == lora.TRAIN or not changed[path], path  # frozen weights stay at init
    assert any(changed[p] for p in changed if p[-1] == "b")
    # Adam moments exist for the adapters only; they are sharded like their kernels.
    moments = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim)
    trainable = lora.count_trainable(state.params, run.model_config.lora)
    assert moments == 2 * trainable == 2 * summarize(config, 8)["trainable_params"]
    wo = state.params["decoder"]["layers"]["block"]["mlp"]["wo"]["lora"]
    assert tuple(wo["a"].sharding.spec) == (None, "tensor", None)  # [layers, mlp, r]
    assert tuple(wo["b"].sharding.spec)[:2] == (None, None)  # [layers, r, embed]

    assert merge_workdir(str(workdir), str(merged_dir)) == 6
    merged_run, merged_params, _ = load_run(str(merged_dir))
    assert merged_run.model_config.lora is None
    assert not any(is_adapter_path(p) for p in _paths(merged_params))
    want = evaluate_workdir(str(workdir), max_batches=2)
    got = evaluate_workdir(str(merged_dir), max_batches=2)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    with pytest.raises(UserError, match="already holds checkpoints"):
        merge_workdir(str(workdir), str(merged_dir))
    # Unmerged, as a PEFT adapter (tests/interop/test_peft_export.py runs it under peft).
    peft_dir = run_dir.to_peft(str(workdir), str(tmp_path / "peft"))
    adapter = json.loads((peft_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and (peft_dir / "base" / "model.safetensors").is_file()
    assert adapter["rank_pattern"] == {f"transformer.h.{i}.attn.c_attn": 8 for i in range(2)}
    assert sorted({m.split(".", 3)[3] for m in adapter["target_modules"]}) == [
        "attn.c_attn", "mlp.c_proj"]


def test_bad_lora_settings_are_one_line_errors(config, tmp_path):
    config.lora.rank = 4
    config.lora.targets = "no_such_layer/kernel"
    with pytest.raises(UserError, match="match no dense kernel"):
        run_lib.train_and_evaluate(config, str(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()
    config.lora.targets = "(query"
    with pytest.raises(UserError, match="not a regular expression"):
        run_lib.setup_run(config, str(tmp_path / "bad"))
