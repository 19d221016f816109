r"""XSum extreme summarization (document -> one-sentence summary), Transformer base.

Needs the dataset prepared once (where there is internet; XSum's builder asks for a manual
download of the BBC articles):
  tfds.builder("xsum", data_dir=DIR).download_and_prepare(file_format="array_record")
then:
  python -m experiments.train --config=experiments/configs/xsum.py --workdir=runs/xsum \
      --config.data.tfds_data_dir=DIR
"""

import ml_collections

from experiments.configs.cnn_dailymail import get_config as cnn_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """XSum: the CNN/DailyMail config on another dataset; no variants (`arg` is None)."""
    c = cnn_config(arg)
    c.data.update(tfds_name="xsum", max_target_len=64)
    c.task.alpha = 0.6
    return c
