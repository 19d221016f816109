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

from experiments.configs.bert_stdlib import bert_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = bert_config("qa", arg, source="tfds", tfds_name="squad", seq_len=128, doc_stride=64)
    c.model.vocab_size = 8192
    c.train.update(steps=5000, eval_batches=None)
    return c
