"""experiments.summary sizes every family through its task, from shapes only."""

import pytest

from experiments.configs import bert_stdlib, gpt_stdlib, seq2seq_stdlib
from transformer_jax.run.summary import summarize


@pytest.mark.parametrize("config_module, preset, expected", [
    (gpt_stdlib, "gpt2_small", 124_439_808),
    (bert_stdlib, "bert_base", 110_106_428),  # with the MLM and NSP heads, as published
    (seq2seq_stdlib, "transformer_base", 63_082_496),
])
def test_summary_counts_each_familys_published_preset(config_module, preset, expected):
    config = config_module.get_config()
    config.model.preset = preset
    if preset == "transformer_base":
        config.model.vocab_size = 37_000  # the paper's shared vocabulary
    summary = summarize(config, num_devices=256)
    assert summary["params"] == expected
