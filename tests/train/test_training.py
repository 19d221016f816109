"""End-to-end training: mesh equivalence, FSDP memory split, exact resume, mesh change.

Fault injection (kill -9, SIGTERM, damaged checkpoints, disk full, NaN) is in test_faults.py.
"""

import json
import pathlib
import shutil

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from transformer_jax import run as run_lib
from transformer_jax import sharding as sharding_lib
from transformer_jax.errors import UserError
from transformer_jax.run import calls
from transformer_jax.train import optim
from transformer_jax.train import state as state_lib


def losses(workdir: pathlib.Path, split: str = "train") -> dict[int, float]:
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == split}


@pytest.mark.parametrize("mesh", [(1, 1, 1), (8, 1, 1), (2, 2, 2), (1, 8, 1)])
def test_same_losses_on_every_mesh(config, tmp_path, mesh):
    """5 fp32 steps give the same losses whatever the sharding (vs a 1-device run)."""
    assert jax.device_count() == 8
    config.train.steps = 5
    reference_dir = tmp_path.parent / "mesh_reference"
    if not (reference_dir / "metrics.jsonl").exists():
        ref = config.copy_and_resolve_references()
        ref.mesh.update(data=1, fsdp=1, tensor=1)
        _train_on(ref, reference_dir, devices=jax.devices()[:1])  # one device, unsharded
    config.mesh.update(data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
    _train_on(config, tmp_path / "run", devices=jax.devices()[: np.prod(mesh)])
    ref_losses, got = losses(reference_dir), losses(tmp_path / "run")
    assert sorted(got) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([got[s] for s in got], [ref_losses[s] for s in got], atol=1e-5)
    assert got[5] < got[1]  # it learns


def _train_on(config, workdir, devices):
    original = sharding_lib.make_mesh

    def make_mesh(data, fsdp, tensor, devices_=None):  # the mesh over `devices` only
        return original(data, fsdp, tensor, devices=devices)

    sharding_lib.make_mesh = make_mesh
    try:
        run_lib.train_and_evaluate(config, str(workdir))
    finally:
        sharding_lib.make_mesh = original


def test_fsdp_shards_params_eightfold(config, tmp_path):
    """Under fsdp=8 each device holds ~1/8 of the parameter bytes."""
    config.model.update(d_model=256, mlp_dim=1024, num_heads=4)
    config.mesh.update(data=1, fsdp=8, tensor=1)
    run = run_lib.setup_run(config, str(tmp_path))
    model = run.task.build_model(run.model_config)
    optimizer, _ = optim.make_optimizer(config.optim, config.train.steps)
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.LOGICAL_AXIS_RULES):
        init_params, _, shardings = run_lib.state_layout(run, model, optimizer)
        state = state_lib.init_state(init_params, optimizer, jax.random.key(0), shardings)
    total = sum(x.nbytes for x in jax.tree.leaves(state.params))
    per_device: dict = {}
    for leaf in jax.tree.leaves(state.params):
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    assert len(per_device) == 8
    for nbytes in per_device.values():
        assert nbytes == pytest.approx(total / 8, rel=0.05)


def test_exact_resume_after_kill(config, tmp_path):
    """Run 6 steps; drop the step-6 checkpoint (as if killed after step 3's); re-run."""
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))
    straight = losses(workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")
    run_lib.train_and_evaluate(config, str(workdir))
    resumed = losses(workdir)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert [resumed[s] for s in range(1, 7)] == [straight[s] for s in range(1, 7)]  # bitwise


def test_checkpoint_restores_onto_another_mesh(config, tmp_path):
    workdir = str(tmp_path / "run")
    config.model.scan_layers = True  # the stacked [layers, ...] layout (CPU default: unrolled)
    config.mesh.update(data=1, fsdp=8, tensor=1)
    run_lib.train_and_evaluate(config, workdir)
    on_fsdp = run_lib.restore_state(run_lib.setup_run(config, workdir))
    config.mesh.update(data=2, fsdp=2, tensor=2)
    on_mixed = run_lib.restore_state(run_lib.setup_run(config, workdir))
    assert int(on_mixed.step) == 6
    kernel = on_mixed.params["decoder"]["layers"]["block"]["mlp"]["wi"]["kernel"]
    assert dict(kernel.sharding.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert tuple(kernel.sharding.spec)[1:] == ("fsdp", "tensor")  # [layers, embed, mlp]
    for a, b in zip(jax.tree.leaves(on_fsdp), jax.tree.leaves(on_mixed), strict=False):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_calls_run_steps_per_call_steps_between_evals_and_checkpoints():
    tcfg = ml_collections.ConfigDict(dict(steps=10, steps_per_call=4, eval_every=8,
                                          checkpoint_every=100))

    def lengths(step):
        out = []
        while step < tcfg.steps:
            out.append(calls.call_length(step, tcfg))
            step += out[-1]
        return out

    assert lengths(0) == [4, 4, 1, 1]  # eval at 8 ends a call; 12 would pass the end
    assert lengths(1) == [4, 1, 1, 1, 1, 1]  # resumed off the grid: one-step calls up to 8


def test_due_is_one_rule_for_every_interval():
    # A call of 4 steps ending at 12 covers 9..12: an interval of 10 falls inside it.
    assert calls.due(12, 10, span=4) and not calls.due(8, 10, span=4)
    assert calls.due(20, 10) and not calls.due(21, 10)
    assert calls.due(7, 100, span=3, total=7)  # the last step is always due
    assert not calls.due(5, 0, span=5)  # interval 0: never


def test_steps_per_call_below_one_is_a_clear_error(config, tmp_path):
    config.train.steps_per_call = 0
    with pytest.raises(UserError, match="train.steps_per_call=0"):
        run_lib.setup_run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_resuming_with_other_train_steps_warns_that_the_schedule_moves(config, tmp_path,
                                                                       caplog):
    config.train.update(steps=3, checkpoint_every=3, eval_every=3)
    run_lib.train_and_evaluate(config, str(tmp_path))
    longer = config.copy_and_resolve_references()
    longer.train.steps = 30
    with caplog.at_level("WARNING"):
        run_lib.setup_run(longer, str(tmp_path))
    assert "train.steps changed from 3 (the checkpoint's) to 30" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_lib.setup_run(config, str(tmp_path))
    assert "train.steps changed" not in caplog.text
    assert "settings other than the checkpoint's" not in caplog.text


def test_resuming_with_another_recipe_warns_naming_each_field(config, tmp_path, caplog):
    config.train.update(steps=3, checkpoint_every=3, eval_every=3)
    run_lib.train_and_evaluate(config, str(tmp_path))
    other = config.copy_and_resolve_references()
    other.train.batch_size = config.train.batch_size * 2
    other.optim.learning_rate = config.optim.learning_rate * 3
    other.train.eval_every = 1  # not part of the recipe: no warning for it
    with caplog.at_level("WARNING"):
        run_lib.setup_run(other, str(tmp_path))
    assert (f"train.batch_size {config.train.batch_size} -> {other.train.batch_size}"
            in caplog.text)
    assert f"optim.learning_rate {config.optim.learning_rate!r} -> " in caplog.text
    assert "eval_every" not in caplog.text
