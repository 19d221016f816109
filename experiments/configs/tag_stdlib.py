r"""Token classification: tag each token of stdlib source lines with its Python token type.

Tags come from the `tokenize` module (NAME, KEYWORD, OP, STRING, NUMBER, COMMENT, ...); each
token is a word whose tag sits on its first sub-token. Offline; a few minutes on 2 CPU cores:

  python -m experiments.train --config=experiments/configs/tag_stdlib.py \
      --workdir=runs/tag_stdlib [--config.init_from=runs/bert_stdlib]

Local CoNLL files: `--config.data.source=local --config.data.path=train.conll
--config.data.validation_path=dev.conll`.
"""

import ml_collections

from experiments.configs.bert_stdlib import bert_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Python token tagging on the stdlib; `arg` is None or "test"."""
    return bert_config("tagging", arg)
