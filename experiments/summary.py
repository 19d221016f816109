r"""Print a config's parameter count and per-device memory as one JSON object.

  python -m experiments.summary [--config=experiments/configs/gpt_stdlib.py]
      [--config.model.preset=gpt2_medium --config.mesh.fsdp=-1] [--num_devices=256]

Computed with jax.eval_shape: no weights are allocated. With --print_config it prints the
config instead: every key with its value after overrides (None = the preset's value) and its
one-line meaning (experiments/config_help.py).
"""

import json

from absl import app, flags

from experiments import common, config_help
from transformer_jax.run.summary import summarize

_CONFIG = common.define_config_flag()
flags.declare_key_flag("config")  # listed in --help
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", None, "Devices to lay the mesh over (default: those present)."
)
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False,
    "Print every config key, its value and its meaning instead of the summary."
)


def main(argv):
    del argv
    config = common.config_value(_CONFIG)
    if _PRINT_CONFIG.value:
        print(config_help.describe(config))
        return
    common.run_main(lambda: print(json.dumps(summarize(config, _NUM_DEVICES.value))))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
