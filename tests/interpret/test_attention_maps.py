"""Captured attention: rows are distributions, causal and padding zeros, the training path
unchanged, scanned == unrolled; PNG heatmaps and curves are written and not blank."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from transformer_jax.errors import UserError
from transformer_jax.interpret import curves, heatmaps
from transformer_jax.interpret.attention import attention_maps
from transformer_jax.models.bert import BertForSequenceClassification
from transformer_jax.models.config import from_preset
from transformer_jax.models.encdec import EncoderDecoder
from transformer_jax.models.gpt import GPT
from transformer_jax.models.stack import unscan_params

SMALL = dict(num_layers=2, d_model=32, num_heads=4, mlp_dim=64, vocab_size=97, max_len=16,
             deterministic=True)
TOKENS = jnp.asarray([[2, 5, 9, 11, 40, 7, 8, 30]], jnp.int32)  # [1, 8]


def _init(model, **inputs):
    return nn.unbox(model.init(jax.random.key(0), **inputs)["params"])


@pytest.fixture(scope="module")
def gpt():
    model = GPT(from_preset("gpt_tiny", **SMALL, scan_layers=False))
    return model, _init(model, tokens=TOKENS)


def test_gpt_rows_sum_to_one_and_causal(gpt):
    model, params = gpt
    maps = attention_maps(model, params, tokens=TOKENS)
    assert list(maps) == ["decoder/self_attention"]
    probs = maps["decoder/self_attention"]
    assert probs.shape == (2, 1, 4, 8, 8)  # [L, B, N, T, S]
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    above = np.triu(np.ones((8, 8), bool), k=1)
    assert np.all(probs[..., above] == 0.0)
    assert np.all(probs[..., ~above] > 0.0)


def test_capture_leaves_outputs_unchanged_and_scan_agrees(gpt):
    model, params = gpt
    plain = model.apply({"params": params}, TOKENS)
    captured, _ = model.apply({"params": params}, TOKENS, mutable=["intermediates"])
    np.testing.assert_array_equal(plain, captured)
    scanned = GPT(from_preset("gpt_tiny", **SMALL, scan_layers=True))
    scan_params = _init(scanned, tokens=TOKENS)
    unrolled = {**scan_params, "decoder": unscan_params(scan_params["decoder"], 2)}
    np.testing.assert_allclose(attention_maps(scanned, scan_params, tokens=TOKENS)[
        "decoder/self_attention"], attention_maps(model, unrolled, tokens=TOKENS)[
        "decoder/self_attention"], atol=1e-6)


def test_bert_padding_columns_are_zero():
    model = BertForSequenceClassification(from_preset("bert_tiny", **{**SMALL, "num_layers": 1}),
                                          num_classes=2)
    padded = TOKENS.at[:, 5:].set(0)  # the last 3 positions are padding
    params = _init(model, tokens=padded)
    probs = attention_maps(model, params, tokens=padded)["encoder/self_attention"]
    assert probs.shape == (1, 1, 4, 8, 8)
    assert np.all(probs[..., 5:] == 0.0)  # nobody attends to padding
    np.testing.assert_allclose(probs[..., :5, :].sum(-1), 1.0, rtol=1e-5)


def test_encdec_cross_attention_is_target_by_source():
    model = EncoderDecoder(from_preset("transformer_tiny", **{**SMALL, "num_layers": 1}))
    source = TOKENS.at[:, 6:].set(0)  # [1, 8], 6 real tokens
    target = TOKENS[:, :5]  # [1, 5]
    params = _init(model, source=source, target_inputs=target)
    maps = attention_maps(model, params, source=source, target_inputs=target)
    assert sorted(maps) == ["decoder/cross_attention", "decoder/self_attention",
                            "encoder/self_attention"]
    cross = maps["decoder/cross_attention"]
    assert cross.shape == (1, 1, 4, 5, 8)
    assert np.all(cross[..., 6:] == 0.0)
    np.testing.assert_allclose(cross.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(maps["decoder/self_attention"][0, 0, 0], k=1) == 0.0)


def _not_blank(path, size):
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (size[1], size[0])
    assert image[..., :3].std() > 0.05  # drawn, not a flat colour


def test_heatmap_png(gpt, tmp_path):
    model, params = gpt
    maps = attention_maps(model, params, tokens=TOKENS)
    labels = {"decoder": [f"t{i}" for i in range(8)]}
    paths = heatmaps.write_heatmaps(maps, labels, tmp_path, layers=[1], heads=[0, 1, 2])
    assert [p.name for p in paths] == ["decoder_self_attention_layer1.png"]
    _not_blank(paths[0], heatmaps.figure_size(3))
    with pytest.raises(UserError, match="--heads=7"):
        heatmaps.write_heatmaps(maps, labels, tmp_path / "bad", heads=[7])
    assert not (tmp_path / "bad").exists()


def test_curves_png(tmp_path):
    rows = [{"step": s, "split": "train", "loss": 5.0 / s} for s in range(1, 21)]
    rows += [{"step": s, "split": "eval", "loss": 4.0 / s, "bits_per_byte": 2.0 / s,
              "perplexity": 100.0, "eval_batches": 16, "eval_complete": 0} for s in (10, 20)]
    assert curves.eval_metric_keys(rows) == ["bits_per_byte"]  # not counts or bookkeeping
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = curves.write_curves(tmp_path)
    assert path == tmp_path / "curves.png"
    _not_blank(path, tuple(round(x * curves.DPI) for x in curves.SIZE_INCHES))
    with pytest.raises(UserError, match="metrics.jsonl does not exist"):
        curves.write_curves(tmp_path / "missing")
