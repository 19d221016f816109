r"""Sequence classification: which stdlib package does this docstring come from (20 ways).

The docstrings of the 20 top-level stdlib packages/modules with the most docstrings (test
suites left out); each package holds out 20 % of its docstrings in whole files (a one-file
module: whole top-level definitions), so validation has every class and shares no file with
training. Offline; a few minutes on 2 CPU cores.
Fine-tune the `bert_stdlib` encoder, or train from scratch without `init_from`:

  python -m experiments.train --config=experiments/configs/classify_stdlib.py \
      --workdir=runs/classify_stdlib --config.init_from=runs/bert_stdlib

Local data: `--config.data.source=local --config.data.path=train.csv` (CSV/TSV/JSONL with
`text` [+ `text_b`] + `label` columns, or a folder-per-label directory of .txt files).
"""

import ml_collections

from experiments.configs.bert_stdlib import bert_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Docstring classification on the stdlib; `arg` is None or "test"."""
    c = bert_config("classify", arg, validation_fraction=0.2)
    if not arg:
        c.train.update(steps=600, eval_every=200, checkpoint_every=200, eval_batches=None)
    return c
