r"""CNN/DailyMail abstractive summarization (article -> highlights), Transformer base.

Needs the dataset prepared once (where there is internet):
  tfds.builder("cnn_dailymail", data_dir=DIR).download_and_prepare(file_format="array_record")
then:
  python -m experiments.train --config=experiments/configs/cnn_dailymail.py \
      --workdir=runs/cnn_dailymail --config.data.tfds_data_dir=DIR
Long articles are truncated to `data.max_source_len` tokens (counts are logged).
"""

import ml_collections

from experiments.configs import common
from experiments.configs.seq2seq_stdlib import seq2seq_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """CNN/DailyMail with transformer_base; this config has no variants (`arg` is None)."""
    common.check_argument(arg, variants=())
    c = seq2seq_config("transformer_base")
    c.model.update(vocab_size=32000, max_len=512)
    c.data.update(source="tfds", tfds_name="cnn_dailymail", max_source_len=512,
                  max_target_len=128)
    c.task.update(alpha=1.0, eval_decode_examples=256)
    c.optim.update(learning_rate=(512 * 4000) ** -0.5, warmup_steps=4000)
    c.train.update(steps=100_000, batch_size=128, eval_every=5000, eval_batches=32,
                   checkpoint_every=5000)
    return c
