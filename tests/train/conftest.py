"""Fixtures for end-to-end training tests: a small local corpus and a private cache."""

import pathlib
import shutil
import sysconfig

import pytest

from experiments.configs import gpt_stdlib

STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> pathlib.Path:
    """~40 real stdlib modules (~1 MB), copied so the tests don't depend on the whole tree."""
    root = tmp_path_factory.mktemp("corpus")
    names = ["json/decoder.py", "json/encoder.py", "textwrap.py", "string.py", "shlex.py",
             "fnmatch.py", "glob.py", "heapq.py", "bisect.py", "copy.py", "abc.py",
             "contextlib.py", "functools.py", "keyword.py", "operator.py", "queue.py",
             "random.py", "sched.py", "statistics.py", "stringprep.py", "tabnanny.py",
             "token.py", "tokenize.py", "types.py", "uu.py", "wave.py", "weakref.py",
             "colorsys.py", "csv.py", "difflib.py", "dis.py", "enum.py", "fractions.py",
             "gettext.py", "hmac.py", "inspect.py", "ipaddress.py", "linecache.py"]
    for name in names:
        if (STDLIB / name).exists():
            shutil.copy(STDLIB / name, root / name.replace("/", "_"))
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TRANSFORMER_JAX_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def config(corpus):
    """The `:test` experiment config on the local corpus, without the final sample."""
    c = gpt_stdlib.get_config("test")
    c.data.source = "local"
    c.data.path = str(corpus)
    c.data.validation_fraction = 0.2
    c.sample.max_new_tokens = 0
    return c
