"""Workdir paths: a local directory or a bucket URL (gs://...), behind one type, `epath.Path`.

Everything a run reads or writes in its workdir (checkpoints, metrics, TensorBoard events,
the tokenizer, config.json, traces) takes an `epath.Path` from `resolve`; Orbax writes
checkpoints to the same URLs itself (through tensorstore). Local paths behave exactly as
`pathlib` paths. A URL's bucket is probed with a deadline before a run writes anything
(`check_reachable`): a missing bucket or one without access is one line, not a hang.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import uuid

from etils import epath

from transformer_jax.errors import UserError

# How long the start-up probe of a bucket may take before the run gives up (seconds).
PROBE_TIMEOUT_S = 30.0
# URL schemes and the package epath needs for each (through fsspec).
_BACKENDS = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs"}


def is_url(path: str | os.PathLike) -> bool:
    """True for a URL (gs://bucket/dir), False for a local path."""
    return "://" in os.fspath(path)


def resolve(path: str | os.PathLike, flag: str = "--workdir") -> epath.Path:
    """The path as an `epath.Path`: local ones made absolute, URLs as given.

    Args:
      path: a local path or a URL such as gs://bucket/runs/gpt.
      flag: how the user gave it (for the error message).

    Raises:
      UserError: an unknown URL scheme, or its filesystem package is not installed.
    """
    if not is_url(path):
        return epath.Path(path).absolute()
    text = os.fspath(path)
    scheme = text.split("://", 1)[0]
    package = _BACKENDS.get(scheme)
    if package is None:
        raise UserError(f"{flag}={text}: unsupported URL scheme {scheme}://; use a local path "
                        f"or one of {', '.join(s + '://' for s in _BACKENDS)}")
    # epath reads and writes URLs through TensorFlow's gfile where it is installed.
    if not any(importlib.util.find_spec(name) for name in (package, "tensorflow")):
        extra = "pip install -e '.[gcs]'" if scheme == "gs" else f"pip install {package}"
        raise UserError(f"{flag}={text}: {scheme}:// paths need the {package} package: "
                        f"{extra}")
    return epath.Path(text)


def check_reachable(path: epath.Path, *, write: bool, flag: str = "--workdir",
                    timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """For a URL: checks within `timeout_s` that it can be read (and written, if `write`).

    The write probe creates and deletes one small marker object under `path`. Local paths
    are not probed (their errors are immediate and name the path already).

    Raises:
      UserError: the bucket is missing, not accessible, or does not answer in time.
    """
    if not is_url(path):
        return
    marker = path / f".write-probe-{uuid.uuid4().hex}"
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            if write:
                marker.write_text("transformer_jax write probe\n")
                marker.unlink()
            else:
                path.exists()
            outcome.append(None)
        except BaseException as e:  # reported by the caller's thread
            outcome.append(e)

    thread = threading.Thread(target=probe, name="workdir-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    what = "write to" if write else "read"
    if not outcome:
        raise UserError(f"{flag}={path}: could not {what} it within {timeout_s:g} s (no "
                        "answer): check the bucket name, the network and the credentials")
    if outcome[0] is not None:
        error = outcome[0]
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise UserError(f"{flag}={path}: could not {what} it ({reason}): check that the "
                        "bucket exists and that this machine's credentials may "
                        f"{'write' if write else 'read'} there")
