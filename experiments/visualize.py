r"""Attention heatmaps of a trained run on a text: one PNG (a grid of heads) per layer.

  python -m experiments.visualize --workdir=runs/gpt_stdlib --text="def add(a, b):" \
      [--layers=0,1 --heads=0,2] [--target="..."] --out=heatmaps/

GPT and BERT runs draw their self-attention; encoder-decoder runs draw the encoder's and
the decoder's self-attention and the decoder's cross-attention (target x source); their
target is --target, else the model's greedy decoding of --text. Prints the written paths.
The arrays: `transformer_jax.interpret.workdir.attention_from_workdir` (for notebooks).
"""

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.interpret.heatmaps import write_heatmaps
from transformer_jax.interpret.workdir import attention_from_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_TEXT = flags.DEFINE_string("text", None, "Input text (the source for seq2seq).",
                            required=True)
_TARGET = flags.DEFINE_string("target", None, "Seq2seq target text (default: decoded).")
_LAYERS = flags.DEFINE_list("layers", [], "Layers to draw (default: all).")
_HEADS = flags.DEFINE_list("heads", [], "Heads to draw (default: all).")
_OUT = flags.DEFINE_string("out", None, "Directory for the PNGs.", required=True)


def _indices(flag: flags.FlagHolder) -> list[int]:
    try:
        return [int(x) for x in flag.value]
    except ValueError:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: give comma-separated "
                               "integers, e.g. 0,1") from None


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        layers, heads = _indices(_LAYERS), _indices(_HEADS)
        maps, tokens = attention_from_workdir(_WORKDIR.value, _TEXT.value, _TARGET.value)
        for path in write_heatmaps(maps, tokens, _OUT.value, layers, heads):
            print(path)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
