r"""NER on TFDS `conll2003` (prepared as array_record in DATA_DIR; not runnable offline):

  python -m experiments.train --config=experiments/configs/conll2003.py \
      --workdir=runs/conll2003 --config.data.tfds_data_dir=DIR --config.init_from=PRETRAINED
"""

import ml_collections

from experiments.configs.bert_stdlib import bert_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = bert_config("tagging", arg, source="tfds", tfds_name="conll2003")
    c.model.vocab_size = 8192
    c.train.update(steps=3000, eval_batches=None)
    return c
