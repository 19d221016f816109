r"""WMT'14 English->German with the Transformer base model, as in "Attention Is All You Need".

Needs the dataset prepared once (where there is internet):
  tfds.builder("wmt14_translate/de-en", data_dir=DIR).download_and_prepare(
      file_format="array_record")
then, on accelerators:
  python -m experiments.train --config=experiments/configs/wmt14_ende.py \
      --workdir=runs/wmt14_ende --config.data.tfds_data_dir=DIR

Arguments after ':' pick a variant:
  :big    transformer_big (dropout 0.3), the paper's big model.
  :t2t    wmt_t2t_translate/de-en (the tensor2tensor training set) instead of wmt14.
The paper's lr is d^-0.5 * min(step^-0.5, step * 4000^-1.5): a peak of 7.0e-4 (base) /
4.9e-4 (big) at step 4,000, which is what `learning_rate` holds here.
"""

import ml_collections

from experiments.configs import common
from experiments.configs.seq2seq_stdlib import seq2seq_config

_PRESETS = {"big": "transformer_big", "t2t": "transformer_base"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """WMT'14 en-de; `arg` is None, "big" or "t2t"."""
    common.check_argument(arg, variants=tuple(_PRESETS))
    c = seq2seq_config(_PRESETS.get(arg, "transformer_base"))
    c.model.vocab_size = 37000
    c.data.update(source="tfds", tfds_name="wmt14_translate/de-en", max_source_len=256,
                  max_target_len=256, long_examples="drop")
    if arg == "t2t":
        c.data.tfds_name = "wmt_t2t_translate/de-en"
    c.task.update(len_a=1.0, len_b=50, eval_decode_examples=512)  # paper: input length + 50
    d_model = 1024 if arg == "big" else 512
    c.optim.update(learning_rate=(d_model * 4000) ** -0.5, warmup_steps=4000)
    c.train.update(steps=100_000, batch_size=256, eval_every=5000, eval_batches=64,
                   checkpoint_every=5000)
    return c
