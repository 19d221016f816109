"""`config.init_from`: a new run starts from another run's weights, or fails clearly."""

import jax
import numpy as np
import pytest

from transformer_jax import run as run_lib
from transformer_jax.errors import UserError
from transformer_jax.train import pretrained


def test_init_from_loads_the_pretrained_weights_and_tokenizer(config, tmp_path):
    source = tmp_path / "pretrain"
    run_lib.train_and_evaluate(config, str(source))
    finetune = config.copy_and_resolve_references()
    finetune.init_from = str(source)
    run = run_lib.setup_run(finetune, str(tmp_path / "finetune"))
    assert run.pretrained is not None and run.pretrained.step == config.train.steps
    assert run.tokenizer.serialized_model() == (source / "tokenizer.model").read_bytes()
    fresh_target = run_lib.restore_state(run_lib.setup_run(config, str(source)))
    with jax.set_mesh(run.mesh):
        # Fresh parameters of another seed: every leaf differs from the pretrained ones.
        fresh = jax.tree.map(lambda x: x + 1.0, fresh_target.params)
        loaded = pretrained.load_into(run.pretrained, fresh)
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(fresh_target.params),
                         strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_init_from_mismatch_and_missing_are_user_errors(config, tmp_path):
    source = tmp_path / "pretrain"
    config.train.steps = 3
    run_lib.train_and_evaluate(config, str(source))
    other = config.copy_and_resolve_references()
    other.init_from = str(source)
    other.model.d_model = 64
    with pytest.raises(UserError, match=r"init_from=.* model.d_model=32 .* says 64"):
        run_lib.setup_run(other, str(tmp_path / "other"))
    other.init_from = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no checkpoint in .*nowhere"):
        run_lib.setup_run(other, str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()
