r"""Continue a prompt with a language model's newest checkpoint (KV cache).

  python -m experiments.generate --workdir=runs/gpt_stdlib --prompt="def " \
      [--max_new_tokens=128 --temperature=0.8 --top_k=40 --top_p=0.95 --seed=0]

Prints the prompt and its continuation. --temperature=0 decodes greedily. For one output per
input line (any task, seq2seq included) use experiments.predict.
"""

from absl import app, flags, logging

from experiments import common
from transformer_jax.run.workdir import generate_from_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_PROMPT = flags.DEFINE_string("prompt", "def ", "Text to continue.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "Tokens to generate at most.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens (0 = all).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        text = generate_from_workdir(
            _WORKDIR.value, _PROMPT.value, max_new_tokens=_MAX_NEW.value,
            temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
            seed=_SEED.value,
        )
        print(_PROMPT.value + text)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
