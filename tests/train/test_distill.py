"""Distillation (`task.name=distill`): the loss is the formula, the teacher is a frozen jit
argument sharded like the student, a distill run trains its student, and teachers that can't
teach the student are one-line UserErrors before anything is written.

Resume needs no test of its own here: the train state is the student's alone (the teacher is
reloaded from `task.teacher`), so tests/train/test_training.py's exact-resume test covers it.
"""

import functools
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import distill_stdlib, gpt_stdlib
from transformer_jax import run as run_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax.errors import UserError
from transformer_jax.interop import run_dir
from transformer_jax.run.workdir import load_run
from transformer_jax.tasks.lm import lm_loss_fn
from transformer_jax.train import distill, losses, optim
from transformer_jax.train import state as state_lib
from transformer_jax.train import step as step_lib


def _on_corpus(c, corpus: pathlib.Path, cache: pathlib.Path):
    c.data.update(source="local", path=str(corpus), validation_fraction=0.2,
                  tokenizer_cache_dir=str(cache))
    c.sample.max_new_tokens = 0
    return c


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory) -> pathlib.Path:
    """A gpt_stdlib ':test' run (2 layers, 3 steps): the teacher of every test here."""
    workdir = tmp_path_factory.mktemp("teacher")
    config = _on_corpus(gpt_stdlib.get_config("test"), corpus, _cache(tmp_path_factory))
    config.train.steps = 3
    run_lib.train_and_evaluate(config, str(workdir))
    return workdir


def _cache(tmp_path_factory) -> pathlib.Path:
    """The tokenizer cache the other training tests use (conftest.py: private_cache)."""
    return tmp_path_factory.getbasetemp() / "cache"


@pytest.fixture
def student(corpus, teacher, tmp_path_factory):
    """The distill_stdlib ':test' config (a 1-layer student) taught by `teacher`."""
    c = _on_corpus(distill_stdlib.get_config("test"), corpus, _cache(tmp_path_factory))
    c.task.teacher = str(teacher)
    return c


def test_the_loss_is_the_formula():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 7)) * 3, rng.normal(size=(2, 3, 7)) * 3  # [B, T, V]
    targets, weights = rng.integers(0, 7, (2, 3)), np.array([[1, 1, 0], [1, 0, 1]])

    @jax.jit
    def sums(*args):
        return (losses.cross_entropy(args[0], args[2], args[3]),
                *(distill.distillation_loss(*args, alpha=a, temperature=2.0)
                  for a in (0.0, 1.0, 0.3)))

    hard, zero, (one_sum, weight_sum), (mixed, _) = sums(
        s.astype(np.float32), t.astype(np.float32), targets, weights)
    assert [float(x) for x in zero] == [float(x) for x in hard]  # exactly the hard loss

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p, q = log_softmax(t / 2.0), log_softmax(s / 2.0)  # teacher_T, student_T
    kl = (np.exp(p) * (p - q)).sum(-1)  # [B, T]
    np.testing.assert_allclose(float(one_sum), 4.0 * (kl * weights).sum(), rtol=1e-5)
    assert float(weight_sum) == 4.0
    np.testing.assert_allclose(float(mixed), 0.3 * float(one_sum) + 0.7 * float(hard[0]),
                               rtol=1e-5)


def _leaves(tree) -> dict[str, jax.Array]:
    return {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_the_teacher_is_a_frozen_jit_argument_sharded_like_the_student(student, teacher,
                                                                       tmp_path):
    student.mesh.update(data=4, fsdp=2)
    run = run_lib.setup_run(student, str(tmp_path / "run"))
    task, tcfg = run.task, run.config.train
    model = task.build_model(run.model_config)
    optimizer, schedule = optim.make_optimizer(run.config.optim, tcfg.steps)
    batches = task.train_batches(run.tokenizer, batch_size=8, seed=0, process_index=0,
                                 process_count=1)
    batch = run.placement().to_global(next(batches))
    batches.close()
    _, saved, _ = load_run(str(teacher))  # the teacher's weights as trained
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        init_params, _, shardings = run_lib.state_layout(run, model, optimizer)
        fresh = functools.partial(state_lib.init_state, init_params, optimizer,
                                  jax.random.key(0), shardings)
        state = fresh()
        frozen = task.frozen_params(run.mesh)
        # ... in the shardings the student's params of the same paths (and logical axes) get.
        mine, theirs = _leaves(state.params), _leaves(frozen)
        assert set(theirs) == set(_leaves(saved))
        for path, x in _leaves(saved).items():
            np.testing.assert_array_equal(np.asarray(theirs[path]), np.asarray(x))
        shared = set(mine) & set(theirs)
        assert len(shared) > 4 and any(theirs[p].sharding.spec != jax.sharding.PartitionSpec()
                                       for p in shared)  # fsdp really shards some
        assert all(theirs[p].sharding == mine[p].sharding for p in shared)

        # alpha = 0: the student task's own loss; alpha = 1: T^2 KL with the teacher's
        # deterministic logits.
        rng = jax.random.key(1)
        task.config.task.kd_alpha = 0.0
        zero = jax.jit(task.loss_fn(model))(state.params, batch, rng, frozen=frozen)
        plain = jax.jit(lm_loss_fn(model))(state.params, batch, rng)
        assert [float(x) for x in zero] == [float(x) for x in plain]
        task.config.task.update(kd_alpha=1.0, kd_temperature=2.0)
        one = jax.jit(task.loss_fn(model))(state.params, batch, rng, frozen=frozen)
        teacher_model = task.build_model(task.teacher.model_config)

        @jax.jit
        def soft_sum(params, frozen, batch):
            inputs = task.model_inputs(batch)
            kl = distill.soft_kl(model.apply({"params": params}, **inputs),
                                 teacher_model.apply({"params": frozen}, **inputs), 2.0)
            return 4.0 * jnp.sum(kl * (batch["segment_ids"] > 0))

        np.testing.assert_allclose(float(one[0]), float(soft_sum(state.params, frozen, batch)),
                                   rtol=1e-5)

        # The trainer's step: the teacher is an argument (another teacher, same program) and
        # is never changed, while the student is.
        task.config.task.kd_alpha = 0.5
        before = {p: np.asarray(x) for p, x in theirs.items()}
        steps = jax.jit(functools.partial(step_lib.train_steps, loss_fn=task.loss_fn(model),
                                          optimizer=optimizer, schedule=schedule),
                        donate_argnums=0)
        stacked = jax.tree.map(lambda x: jnp.stack([x] * 2), batch)
        student0 = np.asarray(jax.tree.leaves(state.params)[0])
        state, metrics = steps(state, stacked, rng, frozen)
        assert not np.array_equal(np.asarray(jax.tree.leaves(state.params)[0]), student0)
        _, other = steps(fresh(), stacked, rng, jax.tree.map(jnp.zeros_like, frozen))
        assert steps._cache_size() == 1  # one program for both teachers
        assert float(other["loss"][0]) != float(metrics["loss"][0])
        for path, x in _leaves(frozen).items():
            np.testing.assert_array_equal(np.asarray(x), before[path])  # bitwise


def _losses(workdir: pathlib.Path, split: str) -> dict[int, dict]:
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x for x in lines if x["split"] == split}


def test_a_distill_run_trains_and_evaluates_the_student(student, teacher, tmp_path):
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(student, str(workdir))
    assert (workdir / "tokenizer.model").read_bytes() == (
        teacher / "tokenizer.model").read_bytes()
    train, evals = _losses(workdir, "train"), _losses(workdir, "eval")
    assert train[6]["loss"] < train[1]["loss"]
    assert set(evals) == {3, 6} and evals[6]["bits_per_byte"] > 0  # the student's metrics
    # Only the student is saved: its checkpoint has 1 layer, the teacher's 2.
    state = run_lib.restore_state(run_lib.setup_run(student, str(workdir)))
    assert "layers_0" in state.params["decoder"] and "layers_1" not in state.params["decoder"]


def test_an_hf_teacher_loads_the_same_weights(student, teacher, tmp_path):
    hf = run_dir.to_hf(str(teacher), str(tmp_path / "hf"))
    from_run = run_lib.setup_run(student, str(tmp_path / "a"))
    student.task.teacher = f"hf:{hf}"
    from_hf = run_lib.setup_run(student, str(tmp_path / "b"))
    assert from_hf.tokenizer.serialized_model() == from_run.tokenizer.serialized_model()
    with jax.set_mesh(from_run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        a, b = (_leaves(r.task.frozen_params(r.mesh)) for r in (from_run, from_hf))
    assert set(a) == set(b)
    for path, x in a.items():
        np.testing.assert_array_equal(np.asarray(b[path]), np.asarray(x))


def test_teachers_that_cannot_teach_are_user_errors(student, teacher, corpus, tmp_path):
    workdir = tmp_path / "run"
    cases = [
        (dict(teacher=str(tmp_path / "nowhere")), {}, r"task.teacher=.*no checkpoint in"),
        (dict(teacher=""), {}, r"config.task.teacher is empty"),
        ({}, dict(vocab_size=256), r"has vocab_size=512 but model.vocab_size=256"),
        (dict(kd_alpha=1.5), {}, r"kd_alpha=1.5"),
        (dict(kd_temperature=0.0), {}, r"kd_temperature=0.0"),
        (dict(student="tagging"), {}, r"task.student='tagging'"),
    ]
    for task, model, message in cases:
        c = student.copy_and_resolve_references()
        c.task.update(task)
        c.model.update(model)
        with pytest.raises(UserError, match=message):
            run_lib.train_and_evaluate(c, str(workdir))
    # A BERT classifier student of the GPT teacher.
    c = distill_stdlib.get_config("classify_test")
    c.task.teacher = str(teacher)
    with pytest.raises(UserError, match=r"is a 'gpt' model but the student .* is 'bert'"):
        run_lib.train_and_evaluate(c, str(workdir))
    assert not workdir.exists()
