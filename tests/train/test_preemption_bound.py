"""SIGTERM stops the run at most `train.steps_per_call` steps after it arrives."""

import os
import signal

from tests.train.test_faults import losses
from transformer_jax import run as run_lib
from transformer_jax.run import train_metrics


def test_sigterm_while_the_loop_waits_for_a_call_saves_that_call(config, tmp_path,
                                                                 monkeypatch, capsys):
    """The signal lands while the host fetches call 1's metrics (steps 1-3), the moment an
    independent run once saw 6 steps at steps_per_call=3: it must save at step 3."""
    config.train.update(steps=12, checkpoint_every=12, eval_every=12)
    real_flush = train_metrics.TrainMetrics.flush

    def flush_then_sigterm(self, step, checkpoint_step):
        real_flush(self, step, checkpoint_step)
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_metrics.TrainMetrics, "flush", flush_then_sigterm)
    workdir = tmp_path / "run"
    run_lib.train_and_evaluate(config, str(workdir))
    out = capsys.readouterr()
    assert "SIGTERM: saved a checkpoint at step 3" in out.out + out.err
    assert max(losses(workdir)) == 3
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["3"]
