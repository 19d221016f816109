r"""Write an int8-quantized copy of a run: weights only, about 4x smaller than float32.

  python -m experiments.quantize --workdir=runs/gpt_stdlib --out=runs/gpt_stdlib_int8 \
      [--groups=dense,embeddings,output]

Per-output-channel symmetric int8 scales (transformer_jax/compress/int8.py); --groups picks
what is quantized: projection kernels (dense), embedding tables (embeddings; with tied
embeddings also the output projection) and an untied lm_head (output). OUT is a run
directory for experiments.evaluate, predict and generate (--workdir=OUT). Prints the sizes.
"""

from absl import app, flags, logging

from experiments import common
from transformer_jax.compress import int8, store
from transformer_jax.run.workdir import checkpoint_metadata, load_run

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_OUT = flags.DEFINE_string("out", None, "New directory for the quantized run.", required=True)
_GROUPS = flags.DEFINE_list("groups", list(int8.GROUPS), "What to quantize: any of "
                            f"{','.join(int8.GROUPS)}.")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        groups = tuple(_GROUPS.value)
        int8.quantize({}, groups)  # checks the groups before anything is read or written
        if store.is_quantized_dir(_WORKDIR.value):
            raise common.UserError(f"--workdir={_WORKDIR.value} is already quantized")
        _, params, step = load_run(_WORKDIR.value)
        qparams = int8.quantize(params, groups)
        store.write(_OUT.value, qparams, scheme="int8", groups=groups, step=step,
                    source=_WORKDIR.value, metadata=checkpoint_metadata(_WORKDIR.value))
        print(f"{_OUT.value}: step {step}, weights {int8.nbytes(params):,} bytes float -> "
              f"{int8.nbytes(qparams):,} bytes int8 + scales")

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
