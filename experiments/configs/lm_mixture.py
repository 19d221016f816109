r"""A small GPT on a weighted mixture of three offline sources (transformer_jax/data/mixture.py).

  python -m experiments.train --config=experiments/configs/lm_mixture.py --workdir=runs/mix

The sources are parts of the running Python's standard library: all of it (`stdlib`, weight
2), and two of its packages read as local files (`email`, `asyncio`, weight 1 each, a tenth
of their files held out). Half of
the training tokens come from `stdlib`, a quarter from each package; evaluation reports the
overall metrics and `<name>/loss`, `<name>/perplexity`, `<name>/bits_per_byte` per source.
Weights can be changed from the command line (`--config.data.mixture.email.weight=3`); a new
source needs a config file like this one.

Arguments after ':' pick a variant:
  :test   a smoke run for tests (the gpt_stdlib `:test` model).
  (none)  the gpt_stdlib default model and schedule.
"""

import pathlib
import sysconfig

import ml_collections

from experiments.configs import gpt_stdlib

_STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])


def _package(name: str) -> dict:
    """A local source of one stdlib package's .py files, a tenth of them held out."""
    files = sorted(str(f) for f in (_STDLIB / name).rglob("*.py"))
    return {"source": "local", "path": ",".join(files), "validation_fraction": 0.1,
            "weight": 1.0}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """gpt_stdlib's config with `data.mixture` set; `arg` is None or "test"."""
    c = gpt_stdlib.get_config(arg)
    c.data.mixture = ml_collections.ConfigDict({
        "stdlib": {"source": "stdlib", "weight": 2.0},
        "email": _package("email"),
        "asyncio": _package("asyncio"),
    })
    return c
