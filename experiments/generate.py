r"""Decode with a run's newest checkpoint (KV caches): continue a prompt, or map inputs.

GPT runs print a continuation of the prompt:

  python -m experiments.generate --workdir=runs/gpt_stdlib --prompt="def " \
      [--max_new_tokens=128 --temperature=0.8 --top_k=40 --top_p=0.95 --seed=0]

--temperature=0 decodes greedily. Seq2seq runs print one output line per input line of
--input_file (or one for --prompt), by beam search, or sampling with --beam_size=0:

  python -m experiments.generate --workdir=runs/seq2seq_stdlib --input_file=F \
      [--beam_size=4 --alpha=0.6]
"""

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.workdir import decode_from_workdir, generate_from_workdir, task_of_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_PROMPT = flags.DEFINE_string("prompt", "def ", "Text to continue.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "Tokens to generate at most.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens (0 = all).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_INPUT = flags.DEFINE_string("input_file", None, "Seq2seq: decode each line of this file.")
_BEAM = flags.DEFINE_integer("beam_size", 4, "Seq2seq: beam size (0 = greedy/sampling).")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "Seq2seq: GNMT length-penalty exponent.")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        if task_of_workdir(_WORKDIR.value) == "seq2seq":
            if _INPUT.value:
                try:
                    with open(_INPUT.value, encoding="utf-8") as f:
                        lines = f.read().splitlines()
                except (OSError, UnicodeDecodeError) as e:
                    raise UserError(f"cannot read --input_file={_INPUT.value}: {e}") from e
            else:
                lines = [_PROMPT.value]
            temperature = _TEMPERATURE.value if flags.FLAGS["temperature"].present else 0.0
            for line in decode_from_workdir(_WORKDIR.value, lines, beam_size=_BEAM.value,
                                            alpha=_ALPHA.value, temperature=temperature,
                                            seed=_SEED.value):
                print(line)
            return
        text = generate_from_workdir(
            _WORKDIR.value, _PROMPT.value, max_new_tokens=_MAX_NEW.value,
            temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
            seed=_SEED.value,
        )
        print(_PROMPT.value + text)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
