r"""Train a model from an experiment config; re-running the same command resumes.

  python -m experiments.train [--config=experiments/configs/gpt_stdlib.py[:arg]]
      [--workdir=runs/gpt_stdlib] [--config.train.steps=1000 ...]

Multi-process (see launch/): every process runs the same command; the layout comes from
--coordinator_address/--num_processes/--process_id, JAX_* variables, SLURM or a TPU VM.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import common
from transformer_jax import distributed
from transformer_jax.run.trainer import train_and_evaluate

_CONFIG = common.define_config_flag()
flags.declare_key_flag("config")  # listed in --help
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config>).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 (default: detected, see launch/).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id in [0, N).")


def main(argv):
    del argv
    config = common.config_value(_CONFIG)
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    workdir = _WORKDIR.value or common.default_workdir(config_file)

    def run() -> None:
        # Before anything touches a device: JAX can't go multi-process after that.
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        train_and_evaluate(config, workdir)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
