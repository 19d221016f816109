"""Pruning in the trainer: masks in the checkpointed optimizer state, so a run resumed in the
middle of the schedule equals the straight run; a bad target stops before anything is
written."""

import json
import re
import shutil

import jax
import numpy as np
import pytest

from transformer_jax import run as run_lib
from transformer_jax.compress import pruning
from transformer_jax.errors import UserError


def _losses(workdir):
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {x["step"]: x["loss"] for x in lines if x["split"] == "train"}


def test_pruned_run_resumed_mid_schedule_equals_the_straight_run(config, tmp_path, capsys):
    # Mask updates at steps 0, 2, 4 (sparsity 0.2, 0.725, 0.8); checkpoints at 3 and 6.
    config.prune.update(sparsity=0.8, initial_sparsity=0.2, begin_step=0, end_step=4,
                        frequency=2)
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))
    line = re.search(r"sparsity \(zero weights\): targeted ([\d.]+)%", "".join(capsys.readouterr()))
    assert line and float(line[1]) == pytest.approx(80.0, abs=0.1)  # the end-of-run report
    straight = run_lib.restore_state(run_lib.setup_run(config, str(workdir)))
    straight_losses = _losses(workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")  # as if killed after step 3's checkpoint
    run_lib.train_and_evaluate(config, str(workdir))
    resumed = run_lib.restore_state(run_lib.setup_run(config, str(workdir)))
    assert _losses(workdir) == straight_losses  # bitwise, steps 1..6
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # params, masks, moments
    got = pruning.measure_sparsity(resumed.params, (pruning.DEFAULT_TARGETS,))
    assert got["targeted"] == pytest.approx(0.8, abs=1e-3)
    kernel = resumed.params["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]  # [32, 64]
    assert int(np.sum(np.asarray(kernel) == 0)) == round(0.8 * kernel.size)
    assert not np.any(np.asarray(resumed.params["embedder"]["token_embed"]["embedding"]) == 0)


def test_a_target_matching_nothing_stops_before_writing(config, tmp_path):
    config.prune.update(sparsity=0.5, targets=r"mlp/w_in/kernel$")
    with pytest.raises(UserError, match=r"config.prune.targets: 'mlp/w_in/kernel\$' matches "
                                        "no parameter"):
        run_lib.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
