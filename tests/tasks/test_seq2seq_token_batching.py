"""data.batching=tokens through the seq2seq task: bucketed batches whose real tokens the
trainer counts, and config errors before anything runs."""

import shutil
import sysconfig

import numpy as np
import pytest

from experiments.configs import seq2seq_stdlib
from transformer_jax.data import token_batching, tokenizer
from transformer_jax.errors import UserError
from transformer_jax.models.config import model_config_from
from transformer_jax.tasks.seq2seq import Seq2Seq


@pytest.fixture
def config(tmp_path):
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "difflib.py"):
        shutil.copy(f"{stdlib}/{name}", tmp_path / name)
    c = seq2seq_stdlib.get_config("test")
    c.data.update(path=str(tmp_path), validation_fraction=0.3, batching="tokens",
                  tokens_per_batch=384)
    return c


def test_token_batches_of_the_task(config):
    task = Seq2Seq(config, model_config_from(config.model))
    source = task.tokenizer_source()
    tok = tokenizer.train_tokenizer((source[i] for i in range(len(source))),
                                    task.model_config.vocab_size, max_chars=200_000)
    batches = task.train_batches(tok, batch_size=8, seed=0, process_index=0, process_count=1)
    assert isinstance(batches, token_batching.TokenBatches)
    seen = [next(batches) for _ in range(6)]
    batches.close()
    assert batches.shapes == [(16, 12), (32, 12), (48, 12)]
    for b in seen:
        rows, s = b["source"].shape
        assert (s, b["targets"].shape[1]) in batches.shapes and rows % 8 == 0  # 8 devices
        real = np.sum(b["source"] != 0) + np.sum(b["targets"] != 0)
        assert int(task.real_tokens(b)) == real
    assert 0 < token_batching.padding_fraction(seen) < 1


def test_token_batching_config_errors(config):
    model = model_config_from(config.model)
    config.train.steps = 5  # steps_per_call is 2 in :test
    with pytest.raises(UserError, match=r"train.steps=5 is not a multiple of "
                                         r"train.steps_per_call=2"):
        Seq2Seq(config, model)
    config.train.steps = 4
    config.data.tokens_per_batch = 0
    with pytest.raises(UserError, match="data.tokens_per_batch=0"):
        Seq2Seq(config, model)
    config.data.batching = "token"
    with pytest.raises(UserError, match="data.batching='token'"):
        Seq2Seq(config, model)
