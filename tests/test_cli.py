"""The absl entrypoints: a real run, generation, summary, and bad input -> one-line error."""

import hashlib
import json
import math
import pathlib
import subprocess
import sys

import pytest

from tests.train.conftest import corpus  # noqa: F401  (session fixture)

ROOT = pathlib.Path(__file__).parent.parent
CONFIG = "experiments/configs/gpt_stdlib.py:test"


def run(module: str, *args: str, env_cache: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "TRANSFORMER_JAX_CACHE": str(env_cache)}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
        env=env, timeout=300,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):  # noqa: F811
    """A 6-step run on the local corpus through the CLI."""
    workdir = tmp_path_factory.mktemp("cli") / "run"
    cache = tmp_path_factory.getbasetemp() / "cache"
    args = [f"--config={CONFIG}", f"--workdir={workdir}", "--config.data.source=local",
            f"--config.data.path={corpus}", "--config.data.validation_fraction=0.2"]
    result = run("experiments.train", *args, env_cache=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir, args, cache, result


def tree_digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def test_train_writes_metrics_checkpoints_tensorboard_and_a_sample(trained):
    workdir, _, _, result = trained
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    evals = [x for x in lines if x["split"] == "eval"]
    assert evals and all({"loss", "perplexity", "bits_per_byte"} <= set(x) for x in evals)
    # The default's short run learns: finite metrics, falling train and held-out loss.
    assert all(math.isfinite(v) for x in lines for v in x.values() if not isinstance(v, str))
    train = [x["loss"] for x in lines if x["split"] == "train"]
    assert train[-1] < train[0] and evals[-1]["loss"] < evals[0]["loss"]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
        "3", "6"]
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert "--- sample" in result.stdout
    # The start-up header: what runs, how big, where, and how it started.
    assert "lm: gpt_tiny (gpt), " in result.stdout and " parameters; " in result.stdout
    assert f"workdir {workdir}: fresh start" in result.stdout
    config = json.loads((workdir / "config.json").read_text())
    assert config["train"]["steps"] == 6 and config["data"]["source"] == "local"


def test_generate_prints_a_continuation(trained):
    workdir, _, cache, _ = trained
    result = run("experiments.generate", f"--workdir={workdir}", "--prompt=import ",
                 "--max_new_tokens=5", "--temperature=0", env_cache=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("import ")


def test_evaluate_prints_json_metrics_and_predict_a_line_per_input(trained):
    workdir, _, cache, _ = trained
    result = run("experiments.evaluate", f"--workdir={workdir}", "--max_batches=2",
                 env_cache=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"loss", "perplexity", "bits_per_byte"} <= set(metrics)
    # The run's last eval used the same 2 batches: the numbers agree.
    last_eval = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()
                 if '"eval"' in x][-1]
    assert metrics["loss"] == pytest.approx(last_eval["loss"], rel=1e-5)
    assert metrics["step"] == 6  # the newest checkpoint; --step picks another
    earlier = run("experiments.evaluate", f"--workdir={workdir}", "--max_batches=1",
                  "--step=3", env_cache=cache)
    assert earlier.returncode == 0, earlier.stderr[-2000:]
    assert json.loads(earlier.stdout.strip().splitlines()[-1])["step"] == 3
    missing = run("experiments.evaluate", f"--workdir={workdir}", "--step=4", env_cache=cache)
    assert missing.returncode == 1 and "no checkpoint step 4" in missing.stderr
    assert "Traceback" not in missing.stderr
    inputs = workdir.parent / "inputs.txt"
    inputs.write_text("def f(x):\nimport os\n")
    result = run("experiments.predict", f"--workdir={workdir}", f"--input_file={inputs}",
                 env_cache=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2


def test_summary_is_json_from_shapes():
    result = run("experiments.summary", "--config.model.preset=gpt2_small",
                 "--config.mesh.data=1", "--config.mesh.fsdp=-1", env_cache=pathlib.Path("/tmp"))
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["params"] == 124_439_808
    assert out["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert out["param_bytes_per_device"] < out["param_bytes_total"] / 7


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--config.train.stepz=3"], "stepz"),
        (["--config.mesh.data=3", "--config.mesh.fsdp=-1"], "does not divide"),
        (["--config.train.batch_size=12"], "batch_size=12"),
        (["--config.data.path=/nonexistent/corpus"], "/nonexistent/corpus"),
        (["--config.model.d_model=64"], "d_model"),
        (["--config.model.vocab_size=640"], "vocab_size"),
        (["--config.data.num_shards=3"], "num_shards=3"),
        (["--config.task.name=summarize"], "task.name='summarize'"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(trained, flags, message):
    workdir, args, cache, _ = trained
    before = tree_digest(workdir)
    result = run("experiments.train", *args, *flags, env_cache=cache)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(workdir) == before


@pytest.mark.parametrize(
    "flags, message",
    [
        ([f"--config={CONFIG}", "--config.optim.schedule=cosin"], "optim.schedule='cosin'"),
        (["--config=experiments/configs/gpt_stdlib.py:tset"], "unknown config argument 'tset'"),
        (["--config=experiments/configs/nope.py"], "nope.py: no such file"),
    ],
)
def test_bad_input_on_a_new_workdir_is_one_line_and_writes_nothing(tmp_path, flags, message):
    workdir = tmp_path / "new"
    result = run("experiments.train", *flags, f"--workdir={workdir}", env_cache=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not workdir.exists()


def test_generate_without_checkpoint_is_a_clear_error(tmp_path):
    result = run("experiments.generate", f"--workdir={tmp_path}", env_cache=tmp_path)
    assert result.returncode == 1
    assert "no checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_config_flag_and_print_config_lists_every_key(tmp_path):
    helped = run("experiments.train", "--help", env_cache=tmp_path)
    assert "--config: Experiment config file" in helped.stdout
    assert "--print_config" in helped.stdout
    listed = run("experiments.summary", f"--config={CONFIG}", "--config.train.steps=7",
                 "--print_config", env_cache=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "train.steps = 7  # optimizer steps in total" in listed.stdout
    assert "train.steps_per_call = 3  # " in listed.stdout


def test_int8_run_directory_heatmaps_and_curves(trained, tmp_path):
    """experiments.quantize's directory evaluates like the run; heatmaps and curves of it."""
    from transformer_jax.compress import int8, store
    from transformer_jax.interpret import curves, heatmaps
    from transformer_jax.interpret.workdir import attention_from_workdir
    from transformer_jax.run import workdir as workdir_lib

    workdir = trained[0]
    quantized = tmp_path / "int8"
    result = run("experiments.quantize", f"--workdir={workdir}", f"--out={quantized}",
                 env_cache=trained[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert store.is_quantized_dir(quantized)
    float_metrics = workdir_lib.evaluate_workdir(str(workdir), max_batches=1)
    int8_metrics = workdir_lib.evaluate_workdir(str(quantized), max_batches=1)
    assert int8_metrics["step"] == float_metrics["step"] == 6
    assert abs(int8_metrics["loss"] / float_metrics["loss"] - 1) < 0.01
    flagged = workdir_lib.evaluate_workdir(str(workdir), max_batches=1, quantize="int8")
    assert flagged["loss"] == pytest.approx(int8_metrics["loss"], rel=1e-6)
    _, params, _ = workdir_lib.load_run(str(workdir))
    # ~3.4x for this d_model=32 model (scales and float biases weigh more at small widths)
    assert int8.nbytes(store.read_weights(quantized)) < int8.nbytes(params) / 3

    maps, tokens = attention_from_workdir(str(quantized), "def f(x):")
    assert list(tokens) == ["decoder"] and tokens["decoder"][0] == "<s>"
    paths = heatmaps.write_heatmaps(maps, tokens, tmp_path / "heat", layers=[0])
    assert [p.name for p in paths] == ["decoder_self_attention_layer0.png"]
    assert curves.write_curves(workdir, tmp_path / "curves.png").is_file()
