"""`train.profile_steps` and `generate --profile`: jax.profiler traces in WORKDIR/profile."""

import pytest

from tests.train.test_faults import losses
from transformer_jax import run as run_lib
from transformer_jax.errors import UserError
from transformer_jax.run import profiling
from transformer_jax.run.workdir import generate_from_workdir


def traces(workdir):
    return sorted((workdir / "profile").rglob("*.xplane.pb"))


def test_profile_steps_trace_the_steps_and_leave_the_losses_alone(config, tmp_path):
    plain, traced = tmp_path / "plain", tmp_path / "traced"
    run_lib.train_and_evaluate(config, str(plain))
    config.train.profile_steps = "4,6"  # the second call of 3 steps
    run_lib.train_and_evaluate(config, str(traced))
    assert losses(traced) == losses(plain)
    assert not (plain / "profile").exists()
    [trace] = traces(traced)
    data = trace.read_bytes()
    assert b"train" in data and b"step_num" in data  # the per-call StepTraceAnnotation

    generate_from_workdir(str(traced), "def ", profile=True, max_new_tokens=4)
    assert len(traces(traced)) == 2  # the decode's, next to the training's


@pytest.mark.parametrize("spec", ["5", "0,3", "6,4", "a,b", "1,2,3"])
def test_bad_profile_steps_are_one_line(spec):
    with pytest.raises(UserError, match="train.profile_steps"):
        profiling.parse_steps(spec)
