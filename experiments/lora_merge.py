r"""Fold a LoRA run's adapters into the base weights; writes a plain run directory.

  python -m experiments.lora_merge --workdir=runs/classify_lora --out=runs/classify_merged
      [--step=N]

The merged run evaluates, predicts and exports like any run (`experiments.evaluate
--workdir=runs/classify_merged` gives the LoRA run's numbers); prints one JSON line.
"""

import json

from absl import app, flags, logging

from experiments import common
from transformer_jax.run.lora_merge import merge_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "The LoRA run's directory.", required=True)
_OUT = flags.DEFINE_string("out", None, "The merged run's directory (new).", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to merge (default: the newest).")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        step = merge_workdir(_WORKDIR.value, _OUT.value, _STEP.value)
        print(json.dumps({"out": _OUT.value, "step": step}))

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
