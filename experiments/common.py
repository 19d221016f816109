"""Shared entrypoint plumbing: the --config/--workdir flags and UserError -> exit 1."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from transformer_jax.errors import UserError

DEFAULT_CONFIG = str(pathlib.Path(__file__).parent / "configs" / "gpt_stdlib.py")


def define_config_flag() -> flags.FlagHolder:
    """--config=path[:arg] plus --config.<key>=<value> overrides.

    ml_collections applies overrides while the flag is defined, so an unknown key fails
    here: it becomes a one-line error (with its "did you mean" hint) and exit status 2.
    """
    try:
        return config_flags.DEFINE_config_file(
            "config", DEFAULT_CONFIG,
            "Experiment config file (path[:arg]); override any key with "
            "--config.<section>.<key>=<value>. List every key, its value and meaning: python -m "
            "experiments.summary --config=FILE --print_config", lock_config=True
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        _flag_error(e)


def _flag_error(error: Exception) -> None:
    text = str(error).replace("\\n", "\n").replace("\\'", "")
    if "Traceback (most recent call last)" in text:
        # ml_collections pastes the config file's traceback into the message: keep the flag
        # and the final exception's own words.
        flag = text.split(": Error whilst parsing", 1)[0].split(": Traceback", 1)[0]
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = f"{flag}: {last.split(': ', 1)[-1]}"
    message = " ".join(text.split())
    print(f"error: bad flag: {message.strip(chr(39))}", file=sys.stderr)
    sys.exit(2)


def config_value(holder: flags.FlagHolder) -> ml_collections.ConfigDict:
    """The parsed --config, or a one-line error (exit 2) if its file could not be loaded.

    ml_collections reports a missing or broken config file only when the config is first
    used, as a long double traceback; this checks it right after flag parsing.
    """
    config = holder.value
    if isinstance(config, ml_collections.ConfigDict):
        return config
    path = config_flags.get_config_filename(flags.FLAGS[holder.name]).partition(":")[0]
    if not pathlib.Path(path).is_file():
        reason = "no such file; configs live in experiments/configs/ (e.g. " \
            "experiments/configs/gpt_stdlib.py)"
    else:
        reason = "it does not load as a config module with get_config(arg)"
    print(f"error: bad flag: --config={path}: {reason}", file=sys.stderr)
    sys.exit(2)


def default_workdir(config_path: str) -> str:
    """runs/<config file name>[_<arg>], next to where the command runs."""
    name, _, arg = config_path.partition(":")
    stem = pathlib.Path(name).stem
    return str(pathlib.Path("runs") / (f"{stem}_{arg}" if arg else stem))


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parser, but a bad flag (e.g. an unknown config key) is one line, exit 2."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        _flag_error(e)


def run_main(fn: Callable[[], None]) -> None:
    """Runs `fn`; a UserError becomes a one-line `error: ...` on stderr and exit status 1."""
    logging.set_verbosity(logging.WARNING)
    try:
        fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
