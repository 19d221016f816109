r"""Continue a prompt with a language model's newest checkpoint (KV cache).

  python -m experiments.generate --workdir=runs/gpt_stdlib --prompt="def " \
      [--max_new_tokens=128 --temperature=0.8 --top_k=40 --top_p=0.95 --seed=0] [--quantize=int8]

Prints the prompt and its continuation. Unset flags take the run's `config.sample` values
(those of the sample printed after training). --temperature=0 decodes greedily. For one output per
input line (any task, seq2seq included) use experiments.predict. --profile writes a
jax.profiler trace of the decode to WORKDIR/profile (TensorBoard's profile plugin / XProf).
"""

from absl import app, flags, logging

from experiments import common
from transformer_jax.run.workdir import generate_from_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints.", required=True)
_PROMPT = flags.DEFINE_string("prompt", "def ", "Text to continue.")
_QUANTIZE = flags.DEFINE_string("quantize", None, "int8: use int8-quantized weights "
                                  "(per-output-channel scales; default: as trained).")
# Default (None): the run's `config.sample`, as in the sample printed after training.
flags.DEFINE_integer("max_new_tokens", None, "Tokens to generate at most.")
flags.DEFINE_float("temperature", None, "Sampling temperature; 0 = greedy.")
flags.DEFINE_integer("top_k", None, "Keep the k most likely tokens (0 = all).")
flags.DEFINE_float("top_p", None, "Nucleus sampling mass (1 = all).")
flags.DEFINE_integer("seed", None, "Sampling seed.")
_PROFILE = flags.DEFINE_bool("profile", False, "Trace the decode into WORKDIR/profile.")
SAMPLING_FLAGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        options = {name: flags.FLAGS[name].value for name in SAMPLING_FLAGS
                   if flags.FLAGS[name].present}
        text = generate_from_workdir(_WORKDIR.value, _PROMPT.value, _QUANTIZE.value,
                                     profile=_PROFILE.value, **options)
        print(_PROMPT.value + text)

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
