r"""NER on TFDS `conll2003` (prepared as array_record in DATA_DIR; not runnable offline):

  python -m experiments.train --config=experiments/configs/conll2003.py \
      --workdir=runs/conll2003 --config.data.tfds_data_dir=DIR --config.init_from=PRETRAINED
"""

import ml_collections

from experiments.configs.bert_stdlib import tfds_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """`tagging` on TFDS `conll2003`; `arg` is None or "test"."""
    return tfds_config("tagging", "conll2003", arg)
