r"""Sequence classification on TFDS `glue/mrpc`: GLUE MRPC (sentence pairs, 2 classes).

Reads the dataset prepared as array_record in DATA_DIR (not runnable offline; without it the
run stops with "dataset not prepared in DATA_DIR"):

  python -m experiments.train --config=experiments/configs/glue_mrpc.py --workdir=runs/glue_mrpc \
      --config.data.tfds_data_dir=DIR --config.init_from=PRETRAINED
"""

import ml_collections

from experiments.configs.bert_stdlib import tfds_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """`classify` on TFDS `glue/mrpc`; `arg` is None or "test"."""
    return tfds_config("classify", "glue/mrpc", arg)
