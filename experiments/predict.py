r"""Predict with a training run's newest checkpoint: one output line per input line.

  echo "text to classify" | python -m experiments.predict --workdir=runs/classify_stdlib

Reads lines from stdin (or --input_file) and prints, per line, what the run's task predicts:
a label (classification), tags (tagging), an answer span (QA; input "question<TAB>context"),
an output sequence (seq2seq), or a continuation (LM; newlines escaped as \n).
"""

import sys

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.workdir import predict_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_INPUT = flags.DEFINE_string("input_file", None, "Read lines from this file (default: stdin).")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        if _INPUT.value:
            try:
                with open(_INPUT.value, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except OSError as e:
                raise UserError(f"cannot read --input_file={_INPUT.value}: {e}") from e
        else:
            lines = sys.stdin.read().splitlines()
        for line in predict_workdir(_WORKDIR.value, lines):
            print(line)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
