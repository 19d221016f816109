r"""Training curves of a run: loss (train and eval) and eval metrics against the step.

  python -m experiments.plot --workdir=runs/gpt_stdlib [--out=curves.png]

Reads WORKDIR/metrics.jsonl; writes WORKDIR/curves.png unless --out says otherwise, and
prints the path.
"""

from absl import app, flags

from experiments import common
from transformer_jax.interpret.curves import write_curves

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with metrics.jsonl.",
                               required=True)
_OUT = flags.DEFINE_string("out", None, "PNG to write (default: WORKDIR/curves.png).")


def main(argv):
    del argv
    common.run_main(lambda: print(write_curves(_WORKDIR.value, _OUT.value)))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
