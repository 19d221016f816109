r"""Train a model from an experiment config; re-running the same command resumes.

  python -m experiments.train [--config=experiments/configs/gpt_stdlib.py[:arg]]
      [--workdir=runs/gpt_stdlib] [--config.train.steps=1000 ...]
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import common
from transformer_jax.train.loop import train_and_evaluate

_CONFIG = common.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config>).")


def main(argv):
    del argv
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    workdir = _WORKDIR.value or common.default_workdir(config_file)
    common.run_main(lambda: train_and_evaluate(_CONFIG.value, workdir))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
