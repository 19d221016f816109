r"""Fold a LoRA run's adapters into the base weights; writes a plain run directory.

  python -m experiments.lora_merge --workdir=runs/classify_lora --out=runs/classify_merged
      [--step=N] [--peft_out=DIR]

The merged run evaluates, predicts and exports like any run (`experiments.evaluate
--workdir=runs/classify_merged` gives the LoRA run's numbers); prints one JSON line.
`--peft_out=DIR` (with or without --out) writes the adapters unmerged, in Hugging Face PEFT's
format, over a `--to_hf` export of the other weights in DIR/base (gpt2 and bert/roberta):
`peft.PeftModel.from_pretrained(AutoModel*.from_pretrained("DIR/base"), "DIR")`.
"""

import json

from absl import app, flags, logging

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.interop.run_dir import to_peft
from transformer_jax.run.lora_merge import merge_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "The LoRA run's directory.", required=True)
_OUT = flags.DEFINE_string("out", None, "The merged run's directory (new).")
_PEFT_OUT = flags.DEFINE_string("peft_out", None, "A PEFT adapter directory to write (new).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to merge (default: the newest).")


def main(argv):
    del argv

    def run():
        logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
        if not (_OUT.value or _PEFT_OUT.value):
            raise UserError("give --out=DIR (a merged run), --peft_out=DIR (a PEFT adapter), "
                            "or both")
        report = {}
        if _PEFT_OUT.value:
            report["peft_out"] = str(to_peft(_WORKDIR.value, _PEFT_OUT.value, _STEP.value))
        if _OUT.value:
            report |= {"out": _OUT.value,
                       "step": merge_workdir(_WORKDIR.value, _OUT.value, _STEP.value)}
        print(json.dumps(report))

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
