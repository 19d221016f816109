r"""Extractive QA on SQuAD v1.1: TFDS `squad` by default, or SQuAD-format JSON files.

  python -m experiments.train --config=experiments/configs/qa_squad.py --workdir=runs/squad \
      --config.data.tfds_data_dir=DIR --config.init_from=PRETRAINED
  # local files:
  python -m experiments.train --config=experiments/configs/qa_squad.py --workdir=runs/qa \
      --config.data.source=local --config.data.path=train-v1.1.json \
      --config.data.validation_path=dev-v1.1.json

Predict reads "question<TAB>context" lines.
"""

import ml_collections

from experiments.configs.bert_stdlib import tfds_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Extractive QA on TFDS `squad`; `arg` is None or "test"."""
    return tfds_config("qa", "squad", arg, steps=5000)
