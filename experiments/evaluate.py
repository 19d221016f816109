r"""Evaluate a training run's newest checkpoint; prints one JSON object of metrics.

  python -m experiments.evaluate --workdir=runs/gpt_stdlib [--split=validation]
      [--max_batches=N] [--step=N] [--quantize=int8]

The task, model and data come from the checkpoint's recorded config. By default the whole
split is evaluated (training evaluates `train.eval_batches` batches only); the JSON includes
the checkpoint `step` it scored.
"""

import json

from absl import app, flags, logging

from experiments import common
from transformer_jax.run.workdir import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "Data split: validation, train or test.")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", None, "Evaluate at most this many batches.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the newest).")
_QUANTIZE = flags.DEFINE_string("quantize", None, "int8: use int8-quantized weights "
                                  "(per-output-channel scales; default: as trained).")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        print(json.dumps(evaluate_workdir(_WORKDIR.value, _SPLIT.value, _MAX_BATCHES.value,
                                          _STEP.value, _QUANTIZE.value),
                         sort_keys=True))

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
