r"""Sequence classification on TFDS `imdb_reviews`: movie reviews (2 classes; its test split).

Reads the dataset prepared as array_record in DATA_DIR (not runnable offline; without it the
run stops with "dataset not prepared in DATA_DIR"):

  python -m experiments.train --config=experiments/configs/imdb.py --workdir=runs/imdb \
      --config.data.tfds_data_dir=DIR --config.init_from=PRETRAINED
"""

import ml_collections

from experiments.configs.bert_stdlib import tfds_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """`classify` on TFDS `imdb_reviews`; `arg` is None or "test"."""
    return tfds_config("classify", "imdb_reviews", arg)
