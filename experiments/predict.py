r"""Predict with a training run's newest checkpoint: one output line per input line.

  echo "text to classify" | python -m experiments.predict --workdir=runs/classify_stdlib
  python -m experiments.predict --workdir=runs/seq2seq_stdlib --input_file=F --beam_size=4

Reads lines from stdin (or --input_file) and prints, per line, what the run's task predicts:
"label<TAB>probability" (classification; --top_k=K: the K most likely labels), tags
(tagging), an answer span (QA; input "question<TAB>context"), the text with every [MASK]
filled then, per mask, a tab and its --top_k (default 5) pieces quoted with probabilities
(BERT pretraining), an output sequence (seq2seq; a literal \n in an input stands for a
newline) or a continuation (LM). Newlines in outputs are written as \n.

Decoding flags, for the tasks that decode (default: the run's config): LM --max_new_tokens,
--temperature, --top_k, --top_p, --seed; seq2seq --beam_size (0 = greedy, or sampling with
--temperature), --alpha, --repetition_penalty, --no_repeat_ngram, --temperature, --top_k,
--top_p, --seed. Classification and fill-mask take --top_k; other
tasks take none.
--quantize=int8 predicts with int8-quantized weights.
"""

import sys

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.run.workdir import predict_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_QUANTIZE = flags.DEFINE_string("quantize", None, "int8: use int8-quantized weights "
                                  "(per-output-channel scales; default: as trained).")
_INPUT = flags.DEFINE_string("input_file", None, "Read lines from this file (default: stdin).")
flags.DEFINE_integer("max_new_tokens", None, "LM: tokens to generate at most.")
flags.DEFINE_float("temperature", None, "Sampling temperature; 0 = greedy.")
flags.DEFINE_integer("top_k", None, "Sampling: keep the k most likely tokens (0 = all); "
                     "classification/fill-mask: show the k most likely choices.")
flags.DEFINE_float("top_p", None, "Nucleus sampling mass (1 = all).")
flags.DEFINE_integer("seed", None, "Sampling seed.")
flags.DEFINE_integer("beam_size", None, "Seq2seq: beam size (0 = greedy/sampling).")
flags.DEFINE_float("alpha", None, "Seq2seq: GNMT length-penalty exponent.")
flags.DEFINE_float("repetition_penalty", None,
                   "Seq2seq beam search: emitted tokens' log-probabilities x this (>= 1; 1 = off).")
flags.DEFINE_integer("no_repeat_ngram", None,
                     "Seq2seq beam search: never repeat an n-gram of this size (0 = off).")
DECODING_FLAGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "beam_size",
                  "alpha", "repetition_penalty", "no_repeat_ngram")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        if _INPUT.value:
            try:
                with open(_INPUT.value, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"cannot read --input_file={_INPUT.value}: {e}") from e
        else:
            lines = sys.stdin.read().splitlines()
        options = {name: flags.FLAGS[name].value for name in DECODING_FLAGS
                   if flags.FLAGS[name].present}
        for line in predict_workdir(_WORKDIR.value, lines, _QUANTIZE.value, **options):
            print(line)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
