"""Launch scripts: syntax, --dry_run command lines, argument passthrough, bad usage."""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

import pytest

LAUNCH = pathlib.Path(__file__).parent.parent / "launch"
SCRIPTS = ["local_multiprocess.sh", "tpu_vm.sh", "slurm_launch.sh", "slurm.sbatch", "lib.sh"]
# Experiment arguments a shell could mangle: spaces, both quote kinds, $, a backslash.
TRICKY = ["--config=experiments/configs/gpt_stdlib.py:test",
          "--config.sample.prompt=def f(x): return 'a' + \"b\"  # $HOME \\n"]


def run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LAUNCH / script), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def command_lines(result: subprocess.CompletedProcess) -> list[list[str]]:
    """The printed commands, split as a shell would; '#' lines are comments."""
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()
            if line and not line.startswith("#")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_syntax(script):
    check = subprocess.run(["bash", "-n", str(LAUNCH / script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck():
    check = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=LAUNCH.parent / "launch",
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("script", ["local_multiprocess.sh", "tpu_vm.sh", "slurm_launch.sh",
                                    "slurm.sbatch"])
def test_help(script):
    result = run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: ")


# local_multiprocess.sh -----------------------------------------------------------------------


def test_local_dry_run_gives_each_process_its_id_devices_and_the_coordinator():
    result = run("local_multiprocess.sh", "--dry_run", "--port=23456", "3", "2", "--",
                 "python", "-m", "experiments.train", *TRICKY,
                 env={"XLA_FLAGS": "--xla_cpu_foo=1 --xla_force_host_platform_device_count=8"})
    lines = command_lines(result)
    assert lines == [
        ["env", "JAX_PLATFORMS=cpu",
         "XLA_FLAGS=--xla_cpu_foo=1 --xla_force_host_platform_device_count=2",
         "JAX_COORDINATOR_ADDRESS=127.0.0.1:23456", "JAX_NUM_PROCESSES=3",
         f"JAX_PROCESS_ID={i}", "python", "-m", "experiments.train", *TRICKY]
        for i in range(3)
    ]


def test_local_picks_a_free_port_and_one_device_by_default():
    (line,) = command_lines(run("local_multiprocess.sh", "--dry_run", "1", "--", "true"))
    port = int(line[3].removeprefix("JAX_COORDINATOR_ADDRESS=127.0.0.1:"))
    assert 0 < port < 65536 and line[2].endswith("--xla_force_host_platform_device_count=1")


def test_local_prefixes_output_and_succeeds_when_all_succeed():
    script = "import os; print('hello from', os.environ['JAX_PROCESS_ID'])"
    result = run("local_multiprocess.sh", "2", "--", sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["[0] hello from 0", "[1] hello from 1"]


def test_local_one_failure_stops_the_others_and_is_the_exit_status():
    # Process 1 fails at once; process 0 would run for a minute unless it is stopped.
    script = ("import os, sys, time; i = os.environ['JAX_PROCESS_ID']; print('up', i, flush=True)"
              "; sys.exit(3) if i == '1' else time.sleep(60)")
    start = time.perf_counter()
    result = run("local_multiprocess.sh", "2", "--", sys.executable, "-c", script)
    assert time.perf_counter() - start < 30
    assert result.returncode == 3
    assert "error: process 1 exited with status 3; stopping the others" in result.stderr
    assert "[1] up 1" in result.stdout


def test_local_sigterm_is_passed_on_and_waited_for():
    """A graceful stop (checkpoint, then exit 0) gets to finish, its output included."""
    script = ("import os, signal, sys, time; i = os.environ['JAX_PROCESS_ID']\n"
              "def stop(*_): time.sleep(0.5); print('saved', i, flush=True); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, stop); print('up', i, flush=True); time.sleep(60)")
    launcher = subprocess.Popen(
        ["bash", str(LAUNCH / "local_multiprocess.sh"), "2", "--", sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = [launcher.stdout.readline() for _ in range(2)]
    assert sorted(started) == ["[0] up 0\n", "[1] up 1\n"]
    launcher.terminate()
    stdout, stderr = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, stderr
    assert sorted(stdout.splitlines()) == ["[0] saved 0", "[1] saved 1"]


@pytest.mark.parametrize("args, message", [
    ((), "expected N [DEVICES_PER_PROCESS] before --"),
    (("two", "--", "true"), "N must be a positive integer, got 'two'"),
    (("2", "0", "--", "true"), "DEVICES_PER_PROCESS must be a positive integer, got '0'"),
    (("2",), "no command after --"),
    (("--port=99999", "2", "--", "true"), "--port must be in 1..65535, got '99999'"),
    (("--bogus", "2", "--", "true"), "unknown option --bogus"),
])
def test_local_bad_usage(args, message):
    result = run("local_multiprocess.sh", *args)
    assert result.returncode == 2
    assert f"error: {message}" in result.stderr and "--help" in result.stderr


# tpu_vm.sh -----------------------------------------------------------------------------------


def test_tpu_dry_run_creates_installs_and_runs_on_all_workers():
    result = run("tpu_vm.sh", "--dry_run", "--name=tj-pod", "--zone=us-central2-b",
                 "--project=my-proj", "--create", "--accelerator_type=v4-32",
                 "--version=tpu-ubuntu2204-base", "--spot", "--repo=https://example.com/tj.git",
                 "--branch=dev", "--workdir=/mnt/shared/runs/a b", "--", *TRICKY)
    create, install, train = command_lines(result)
    where = ["tj-pod", "--zone=us-central2-b", "--project=my-proj"]
    assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", *where,
                      "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"]
    ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", *where, "--worker=all"]
    assert install[:-1] == ssh and train[:-1] == ssh
    # The --command strings, split as the workers' shell will split them.
    remote_install = shlex.split(install[-1].removeprefix("--command="))
    assert "clone --quiet --branch dev https://example.com/tj.git transformer_jax" in " ".join(
        remote_install)
    # The images' python3 is 3.10 (Ubuntu 22.04): a uv-fetched 3.11 venv in the checkout.
    assert "uv venv --quiet --allow-existing --python 3.11 transformer_jax/.venv;" in (
        " ".join(remote_install))
    assert remote_install[-10:] == ["python3", "-m", "uv", "pip", "install", "--quiet",
                                    "--python", "transformer_jax/.venv/bin/python", "-e",
                                    "transformer_jax[tpu]"]
    assert shlex.split(train[-1].removeprefix("--command=")) == [
        "cd", "transformer_jax", "&&", ".venv/bin/python", "-m", "experiments.train", *TRICKY,
        "--workdir=/mnt/shared/runs/a b"]


@pytest.mark.parametrize("accelerator, version", [
    ("v6e-8", "v2-alpha-tpuv6e"), ("v5p-8", "v2-alpha-tpuv5"),
    ("v5litepod-16", "v2-alpha-tpuv5-lite"), ("v4-8", "tpu-ubuntu2204-base")])
def test_tpu_create_picks_the_software_version_for_the_type(accelerator, version):
    result = run("tpu_vm.sh", "--dry_run", "--name=v", "--zone=z", "--create",
                 f"--accelerator_type={accelerator}", "--skip_install")
    create, _ = command_lines(result)
    assert create[-1] == f"--version={version}"


@pytest.mark.parametrize("repo", ["/home/me/transformer_jax", "../tj", "file:///srv/tj.git"])
def test_tpu_local_repo_is_a_clear_error_before_any_command(repo):
    result = run("tpu_vm.sh", "--dry_run", "--name=v", "--zone=z", f"--repo={repo}")
    assert result.returncode == 2 and not result.stdout
    assert f"error: --repo={repo} is a local path the TPU workers cannot clone" in result.stderr
    ok = run("tpu_vm.sh", "--dry_run", "--name=v", "--zone=z",
             "--repo=git@github.com:me/tj.git")
    assert ok.returncode == 0, ok.stderr


def test_tpu_dry_run_with_a_bucket_workdir_installs_the_gcs_extra():
    result = run("tpu_vm.sh", "--dry_run", "--name=v", "--zone=z",
                 "--repo=https://example.com/tj.git", "--workdir=gs://bkt/runs/gpt")
    install, train = command_lines(result)
    assert shlex.split(install[-1])[-1] == "transformer_jax[tpu,gcs]"
    assert shlex.split(train[-1])[-1] == "--workdir=gs://bkt/runs/gpt"


def test_tpu_dry_run_without_create_or_install_only_runs():
    result = run("tpu_vm.sh", "--dry_run", "--name=v", "--zone=z", "--skip_install",
                 "--remote_dir=~/code/tj")
    (train,) = command_lines(result)
    assert train == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "v", "--zone=z",
                     "--worker=all",
                     "--command=cd code/tj && .venv/bin/python -m experiments.train"]


@pytest.mark.parametrize("args, message", [
    (("--zone=z",), "--name=NAME is required"),
    (("--name=v",), "--zone=ZONE is required"),
    (("--name=v", "--zone=z", "--config=x"), "unknown option '--config=x' (experiment "
                                             "arguments go after --)"),
])
def test_tpu_bad_usage(args, message):
    result = run("tpu_vm.sh", "--dry_run", *args)
    assert result.returncode == 2 and f"error: {message}" in result.stderr


# slurm_launch.sh + slurm.sbatch --------------------------------------------------------------


def test_slurm_dry_run_one_process_per_gpu():
    result = run("slurm_launch.sh", "--dry_run", "--nodes=2", "--partition=gpu",
                 "--account=lab", "--time=2:00:00", "--python=.venv/bin/python", "--", *TRICKY)
    (sbatch,) = command_lines(result)
    root = str(LAUNCH.parent)
    assert sbatch == ["sbatch", "--job-name=transformer_jax", "--nodes=2",
                      "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu",
                      "--account=lab", "--time=2:00:00", f"--chdir={root}",
                      "--export=ALL,PYTHON=.venv/bin/python,TJ_PROCESS_PER=gpu",
                      f"{root}/launch/slurm.sbatch", *TRICKY]
    assert "# each of the 16 processes gets" in result.stdout
    assert "JAX_COORDINATOR_ADDRESS=<first host of scontrol show hostnames" in result.stdout


def test_slurm_dry_run_one_process_per_node():
    result = run("slurm_launch.sh", "--dry_run", "--nodes=3", "--gpus_per_node=4",
                 "--process_per=node", "--port=5555")
    (sbatch,) = command_lines(result)
    assert "--ntasks-per-node=1" in sbatch and "--gpus-per-node=4" in sbatch
    assert "--export=ALL,PYTHON=python3,TJ_PROCESS_PER=node,TJ_PORT=5555" in sbatch
    assert "JAX_LOCAL_DEVICE_IDS=0,1,2,3" in result.stdout
    assert ":5555" in result.stdout


@pytest.mark.parametrize("args, message", [
    ((), "--nodes=N is required"),
    (("--nodes=2", "--process_per=core"), "--process_per must be gpu or node, got 'core'"),
    (("--nodes=2", "--port=0"), "--port must be in 1..65535"),
])
def test_slurm_bad_usage(args, message):
    result = run("slurm_launch.sh", "--dry_run", *args)
    assert result.returncode == 2 and f"error: {message}" in result.stderr


@pytest.fixture
def fake_slurm(tmp_path) -> dict:
    """PATH with stand-ins for scontrol (two hosts) and srun (prints args and JAX_* env)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        '#!/bin/sh\n[ "$*" = "show hostnames gpu-a[01-02]" ] && printf "gpu-a01\\ngpu-a02\\n"\n')
    (bin_dir / "srun").write_text(
        "#!/bin/sh\nprintf 'arg:%s\\n' \"$@\"\nenv | grep '^JAX_' | sort\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SLURM_", "TJ_"))}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", "SLURM_JOB_ID": "4097",
            "SLURM_JOB_NODELIST": "gpu-a[01-02]", "SLURM_NTASKS": "16",
            "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "8"}


def _sbatch(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LAUNCH / "slurm.sbatch"), *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_sbatch_coordinator_is_the_first_node_and_args_pass_through(fake_slurm):
    result = _sbatch(fake_slurm, *TRICKY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "coordinator gpu-a01:61441, 16 processes on 2 nodes"
    args = [line.removeprefix("arg:") for line in lines if line.startswith("arg:")]
    # TRICKY's second argument ends in a backslash-n that is no newline: one line each.
    assert args == ["--kill-on-bad-exit=1", "python3", "-m", "experiments.train", *TRICKY]
    assert "JAX_COORDINATOR_ADDRESS=gpu-a01:61441" in lines
    assert not any(line.startswith("JAX_LOCAL_DEVICE_IDS") for line in lines)


def test_sbatch_one_process_per_node_sees_all_gpus(fake_slurm):
    result = _sbatch({**fake_slurm, "TJ_PROCESS_PER": "node", "TJ_PORT": "7000",
                      "PYTHON": "/venv/bin/python"})
    lines = result.stdout.splitlines()
    assert "JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in lines
    assert "JAX_COORDINATOR_ADDRESS=gpu-a01:7000" in lines and "arg:/venv/bin/python" in lines


def test_sbatch_outside_slurm_is_refused(fake_slurm):
    env = {k: v for k, v in fake_slurm.items() if k != "SLURM_JOB_ID"}
    result = _sbatch(env)
    assert result.returncode == 2 and "error: not inside a SLURM job" in result.stderr
