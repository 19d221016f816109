"""The seq2seq task end to end (train_step, evaluate, demo, predict) and its objective."""

import shutil
import sysconfig

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.configs import seq2seq_stdlib
from tests.models.toy_seq2seq import CONFIG, reversal_batch, trained
from tests.tensorboard_events import summaries
from transformer_jax import run as run_lib
from transformer_jax.errors import UserError
from transformer_jax.models.config import from_preset
from transformer_jax.run import workdir as workdir_lib
from transformer_jax.run.evaluation import Evaluator
from transformer_jax.tasks.seq2seq import Seq2Seq, seq2seq_loss_fn
from transformer_jax.train import optim


def test_label_smoothed_loss_matches_hand_computation():
    model, params, _ = trained()
    src, inp, tgt = reversal_batch(np.random.default_rng(0), 2)
    batch = {"source": src, "target_inputs": inp, "targets": tgt}

    @jax.jit
    def loss_and_logp(params):
        loss = seq2seq_loss_fn(model, 0.1)(params, batch, jax.random.key(0))
        return loss, jax.nn.log_softmax(model.apply({"params": params}, src, inp))

    (loss_sum, weight), logp = loss_and_logp(params)
    v = CONFIG.vocab_size
    hand = 0.0
    for b, t in zip(*np.nonzero(tgt), strict=True):  # padding (target 0) has no weight
        q = np.full(v, 0.1 / v)
        q[tgt[b, t]] += 0.9
        hand -= float(q @ np.asarray(logp[b, t]))
    assert float(weight) == np.count_nonzero(tgt)
    np.testing.assert_allclose(float(loss_sum), hand, rtol=1e-5)


def test_inverse_sqrt_schedule_is_the_papers():
    d, warmup = 512, 4000
    optim_cfg = ml_collections.ConfigDict(dict(learning_rate=(d * warmup) ** -0.5,
                                               schedule="inverse_sqrt", warmup_steps=warmup))
    schedule = optim.make_schedule(optim_cfg, 100_000)
    for step in (1, 100, 2000, 4000, 4001, 10_000, 100_000):
        paper = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        np.testing.assert_allclose(float(schedule(step)), paper, rtol=1e-4)  # float32
    assert float(schedule(0)) == 0.0


@pytest.fixture
def small_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path / "cache"))
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py", "bisect.py",
                 "copy.py", "colorsys.py", "difflib.py", "fractions.py", "gettext.py"):
        shutil.copy(f"{stdlib}/{name}", tmp_path / name)
    c = seq2seq_stdlib.get_config("test")
    c.data.update(path=str(tmp_path), validation_fraction=0.3)
    c.train.update(steps=2, checkpoint_every=2)  # one evaluation, one checkpoint
    return c


def test_train_evaluate_and_decode_through_the_trainer(small_config, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    metrics = run_lib.train_and_evaluate(small_config, workdir)
    assert set(metrics) >= {"loss", "token_accuracy", "bleu", "rouge1", "rouge2", "rougeL",
                            "rougeLsum"}
    assert metrics["decoded"] == 8 and all(np.isfinite(v) for v in metrics.values())
    demo = capsys.readouterr().out
    assert demo.count("reference: ") == 2 and demo.count("output: ") == 2  # the end demo
    assert ("demo/text_summary", "text", 2) in summaries(tmp_path / "run" / "tensorboard")
    # What experiments.predict does: one output line per input line, beam or sampled.
    decoded = workdir_lib.predict_workdir(workdir, ["def f(x):\\n    return x", "y = 1"],
                                          beam_size=2)
    assert len(decoded) == 2 and all("\n" not in line for line in decoded)
    assert workdir_lib.task_of_workdir(workdir) == "seq2seq"
    run = run_lib.setup_run(small_config, workdir)
    params = run_lib.restore_state(run).params
    lines = ["def f(x):\\n    return x + 1", "", "x" * 10_000]  # empty and over-long too
    with jax.set_mesh(run.mesh):
        placement = run.placement()
        beam = run.task.predict(placement, params, run.tokenizer, lines)
        sampled = run.task.predict(placement, params, run.tokenizer, lines, beam_size=0,
                                   temperature=1.0, seed=3)
        again = Evaluator(run.task, placement, run.tokenizer)(
            params, "validation", run.config.train.eval_batches)
    assert len(beam) == len(sampled) == 3 and all("\n" not in o for o in beam + sampled)
    assert again == pytest.approx(metrics)  # the restored checkpoint evaluates the same


def test_bad_task_configs_are_clear_errors(small_config):
    with pytest.raises(UserError, match="encoder-decoder preset"):
        Seq2Seq(small_config, from_preset("gpt_tiny"))
    small_config.data.source = "csv"
    task = Seq2Seq(small_config, from_preset("transformer_tiny"))
    with pytest.raises(UserError, match="data.source='csv' is unknown"):
        task.tokenizer_source()
    assert jnp.asarray(task.init_batch()["source"]).shape == (1, 48)
    assert task.metadata()["bleu_signature"].startswith("nrefs:1|case:mixed|")
