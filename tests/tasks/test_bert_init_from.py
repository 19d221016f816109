"""Fine-tuning from a BERT pretraining run: the trainer's `config.init_from` copies the `bert`
encoder (and the tokenizer) and leaves the new head freshly initialized."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from tests.tasks.conftest import STDLIB, tiny_config
from tests.tasks.test_classify import rows, write_csv
from transformer_jax import run as run_lib
from transformer_jax import sharding
from transformer_jax.errors import UserError
from transformer_jax.train import optim, pretrained, state


@pytest.fixture(scope="module")
def pretraining_run(tmp_path_factory):
    """A 2-step bert_pretrain run (tiny model, its own tokenizer cache) on a few stdlib files."""
    root = tmp_path_factory.mktemp("bert_init_from")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("string.py", "textwrap.py", "shlex.py", "glob.py", "heapq.py", "copy.py",
                 "queue.py", "sched.py", "csv.py", "abc.py"):
        (corpus / name).write_text((STDLIB / name).read_text())
    c = tiny_config("bert_pretrain", source="local", path=str(corpus), validation_fraction=0.3,
                    tokenizer_cache_dir=str(root / "cache"))
    c.train.update(steps=2, eval_every=2, checkpoint_every=2, eval_batches=1)
    run_lib.train_and_evaluate(c, str(root / "pretrain"))
    return c, root


def finetune_config(root, **model):
    write_csv(root / "train.csv", rows(64))
    c = tiny_config("classify", source="local", path=str(root / "train.csv"))
    c.init_from = str(root / "pretrain")
    c.model.update(model)
    return c


def test_classifier_starts_from_the_pretrained_encoder(pretraining_run):
    pre_config, root = pretraining_run
    run = run_lib.setup_run(finetune_config(root), str(root / "classify"))
    assert run.tokenizer.serialized_model() == (root / "pretrain/tokenizer.model").read_bytes()
    model = run.task.build_model(run.model_config)
    optimizer, _ = optim.make_optimizer(run.config.optim, run.config.train.steps)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding.LOGICAL_AXIS_RULES):
        init_params, _, shardings = run_lib.state_layout(run, model, optimizer)
        fresh = state.init_state(init_params, optimizer, jax.random.key(5), shardings).params
        loaded = pretrained.load_into(run.pretrained, fresh)
    trained = run_lib.restore_state(run_lib.setup_run(pre_config, str(root / "pretrain"))).params
    assert set(loaded) == {"bert", "classifier"} and set(trained) == {"bert", "mlm", "nsp"}
    for got, want in zip(jax.tree.leaves(loaded["bert"]), jax.tree.leaves(trained["bert"]),
                         strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    for got, want in zip(jax.tree.leaves(loaded["classifier"]),
                         jax.tree.leaves(fresh["classifier"]), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_other_preset_or_vocab_is_a_clear_error(pretraining_run):
    _, root = pretraining_run
    with pytest.raises(UserError, match=r"init_from=.* model.vocab_size=384 .* says 512"):
        run_lib.setup_run(finetune_config(root, vocab_size=512), str(root / "other"))
    with pytest.raises(UserError, match=r"init_from=.* model.num_layers=2 .* says 3"):
        run_lib.setup_run(finetune_config(root, num_layers=3), str(root / "other"))
    assert not (root / "other").exists()


def test_the_trainer_says_which_subtrees_it_loaded(pretraining_run, capsys):
    _, root = pretraining_run
    c = finetune_config(root)
    c.train.update(steps=1, eval_every=1, checkpoint_every=1, eval_batches=1, steps_per_call=1)
    run_lib.train_and_evaluate(c, str(root / "classify_run"))
    out = capsys.readouterr().out
    assert f"init_from {root / 'pretrain'} step 2: loaded bert; fresh classifier" in out
