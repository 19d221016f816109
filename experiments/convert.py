r"""Convert Hugging Face checkpoints to run directories and back.

  python -m experiments.convert --from_hf=DIR --workdir=OUT [--config=FILE] [--scan_layers]
  python -m experiments.convert --to_hf=DIR --workdir=W

--from_hf reads a local Hugging Face model directory (config.json, model.safetensors / a
sharded index / pytorch_model.bin, tokenizer files) and writes a run directory that
experiments.generate, evaluate, predict and train use like any other (checkpoint step 0).
--config defaults to the offline config of the checkpoint's task (e.g. gpt_stdlib.py for a
GPT-2); its data/train/optim/mesh sections are what a later train run uses.
--to_hf writes the run's newest checkpoint as a directory transformers.AutoModel* loads.
"""

import importlib

from absl import app, flags

from experiments import common
from transformer_jax.errors import UserError
from transformer_jax.interop import api, run_dir

_CONFIG = common.define_config_flag()
_FROM_HF = flags.DEFINE_string("from_hf", None, "Hugging Face model directory to import.")
_TO_HF = flags.DEFINE_string("to_hf", None, "Hugging Face directory to export to.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run directory.", required=True)
_SCAN = flags.DEFINE_bool("scan_layers", None, "Stack layers for nn.scan (default: the "
                                               "device's default, unrolled on CPU).")
# The offline config of each task (its data/train sections are a converted run's defaults)
# when --config (default gpt_stdlib.py, with any --config.* overrides) is of another task.
TASK_CONFIGS = {"lm": "gpt_stdlib", "bert_pretrain": "bert_stdlib",
                "classify": "classify_stdlib", "tagging": "tag_stdlib", "qa": "qa_squad",
                "seq2seq": "seq2seq_stdlib"}


def main(argv):
    del argv
    def run() -> None:
        if (_FROM_HF.value is None) == (_TO_HF.value is None):
            raise UserError("give exactly one of --from_hf=DIR (import) or --to_hf=DIR (export)")
        if _TO_HF.value is not None:
            out = run_dir.to_hf(_WORKDIR.value, _TO_HF.value)
            print(f"wrote {out}")
            return
        _, _, arch = api.open_hf(_FROM_HF.value)
        config = common.config_value(_CONFIG)
        if config.task.name != arch.task and not flags.FLAGS["config"].present:
            module = importlib.import_module(f"experiments.configs.{TASK_CONFIGS[arch.task]}")
            config = module.get_config()
        out = run_dir.from_hf(_FROM_HF.value, _WORKDIR.value, config, _SCAN.value)
        print(f"wrote {out} ({arch.task}: {arch.model.num_layers} layers, d_model "
              f"{arch.model.d_model}, vocab {arch.model.vocab_size})")

    common.run_main(run)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
