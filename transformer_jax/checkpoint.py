"""Orbax checkpoints of (train state, Grain iterator state, layout metadata), with fallback.

Each step directory holds three items: `state` (the sharded TrainState), `data` (the Grain
iterator state as JSON, the same on every process, so resume continues the exact data order
on any process count) and `meta` (JSON:
preset, model config, vocab, scan layout, mesh, so restore and conversion never guess).

Orbax does not skip a damaged newest step by itself (docs/architecture.md, checkpoints):
an empty step dir is listed as latest, a truncated file raises. `Checkpointer.restore`
walks steps newest to oldest, using a fresh manager per try, and moves the damaged newer
steps aside (renamed, never deleted) so later saves do not collide with them.
"""

from __future__ import annotations

import logging as std_logging
import os
import shutil
import time
from typing import Any

import orbax.checkpoint as ocp
from absl import logging

from transformer_jax import distributed, workpath
from transformer_jax.errors import UserError


def _not_read_only_notice(record: std_logging.LogRecord) -> bool:
    """False for Orbax's "Given directory is read only" warning, True for everything else.

    Orbax logs it whenever a manager is built with `read_only=True`, which every resume,
    evaluate, predict and generate does on purpose (several times, as restore retries with
    a fresh manager), so it tells the user nothing. Only that exact message is dropped.
    """
    return record.msg != "Given directory is read only=%s"


def _not_disk_full_trace(record: std_logging.LogRecord) -> bool:
    """False for Orbax's error logs (with tracebacks) of a save that ran out of disk space.

    Each background thread of a failed save logs the same error with its traceback; the
    failure reaches the run as `Checkpointer`'s one-line UserError, which says it all.
    """
    if record.levelno < std_logging.ERROR or "/orbax/" not in record.pathname:
        return True
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
    return not _is_disk_full(text)


def _is_disk_full(text: str) -> bool:
    return "No space left on device" in text or "os_error_code='28'" in text


# Orbax logs through absl, i.e. the standard logger named "absl".
std_logging.getLogger("absl").addFilter(_not_read_only_notice)
std_logging.getLogger("absl").addFilter(_not_disk_full_trace)


class Checkpointer:
    """Saves and restores checkpoints under `directory` (async, keeping the newest N).

    Args:
      directory: the checkpoints folder (e.g. WORKDIR/checkpoints; a URL such as gs://...
        works the same).
      max_to_keep: how many step directories to keep.
      async_save: write in a background thread while training continues.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3,
                 async_save: bool = True):
        self.directory = workpath.resolve(directory)
        self._options = dict(max_to_keep=max_to_keep, enable_async_checkpointing=async_save)
        self._manager: ocp.CheckpointManager | None = None
        self._saving: int | None = None  # the step of the newest save started

    # Reading ---------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        """Step numbers present on disk (integer-named dirs), oldest first, even damaged ones."""
        if not self.directory.is_dir():
            return []
        unfinished = [p.name for p in self.directory.iterdir() if ".orbax-checkpoint-tmp" in p.name]
        if unfinished:
            logging.warning("ignoring unfinished checkpoint writes in %s: %s",
                            self.directory, ", ".join(sorted(unfinished)))
        return self._step_numbers()

    def _step_numbers(self) -> list[int]:
        """`steps` without its warning about unfinished writes."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir()
                      if p.is_dir() and p.name.isdigit())

    def read_metadata(self) -> tuple[int, dict] | None:
        """(step, metadata) of the newest step whose metadata is readable, or None."""
        for step in reversed(self.steps()):
            try:
                self._check_complete(step, ["meta"])
                restored = self._fresh_manager(read_only=True).restore(
                    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )
                return step, dict(restored["meta"])
            except Exception as e:  # any damage: try an older step
                logging.warning("checkpoint %s/%d: metadata unreadable (%s)",
                                self.directory, step, _short(e))
        return None

    def restore(
        self, abstract_state: Any, data_iterator: Any | None = None, step: int | None = None
    ) -> tuple[int, Any] | None:
        """Restores the newest good step (or `step`) into `abstract_state`'s shardings; sets
        the iterator.

        Args:
          abstract_state: pytree of `jax.ShapeDtypeStruct(shape, dtype, sharding=...)`; the
            restored arrays get those shardings (so restoring onto another mesh works).
          data_iterator: a Grain dataset iterator whose state is set to the saved one (None:
            restore the train state only, e.g. for generation).
          step: restore exactly this step (None: the newest good one).

        Returns:
          (step, state), or None when there is no checkpoint at all.

        Raises:
          UserError: checkpoints exist but none can be restored, or there is no `step`.
        """
        steps = self.steps()
        if step is not None:
            if step not in steps:
                raise UserError(f"no checkpoint step {step} in {self.directory}; it has steps "
                                f"{steps}")
            steps = [step]
        failures = []
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = ocp.args.JsonRestore()
        for step in reversed(steps):
            try:
                self._check_complete(step, list(items))
                restored = self._fresh_manager(read_only=True).restore(
                    step, args=ocp.args.Composite(**items)
                )
            except Exception as e:  # any damage: fall back to an older step
                logging.warning("checkpoint %s/%d is unreadable (%s); trying an older step",
                                self.directory, step, _short(e))
                failures.append(step)
                continue
            if data_iterator is not None:
                data_iterator.set_state(restored["data"])
            for bad in failures:
                self._quarantine(bad)
            return step, restored["state"]
        if steps:
            raise UserError(
                f"no checkpoint in {self.directory} can be restored (steps {steps}); "
                "move that directory away to start fresh"
            )
        return None

    # Writing ---------------------------------------------------------------------------------
    def save(self, step: int, state: Any, data_iterator: Any, metadata: dict,
             *, force: bool = False) -> None:
        """Starts saving `step` (async); returns once the arrays are copied off-device."""
        if self._manager is None:
            self._manager = self._fresh_manager(read_only=False)
        self.wait()  # the previous async save (Orbax's save waits too): a failure names it
        self._saving = step
        self._check_space()
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    # Taken now, so an async write can't see a later state. Merged over the
                    # processes (each holds its data shards'), one JSON copy resumes on any
                    # process count.
                    data=ocp.args.JsonSave(
                        distributed.merge_process_states(data_iterator.get_state())),
                    meta=ocp.args.JsonSave(metadata),
                ),
                force=force,
            )
        except Exception as e:  # also reports a failed earlier async save
            raise self._save_error(step, e) from e

    def wait(self) -> None:
        """Blocks until pending async saves are on disk."""
        if self._manager is not None:
            try:
                self._manager.wait_until_finished()
            except Exception as e:  # an async write failed (disk full, ...)
                raise self._save_error(None, e) from e

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    # Internals -------------------------------------------------------------------------------
    def _fresh_manager(self, *, read_only: bool) -> ocp.CheckpointManager:
        if read_only:  # no saving or pruning options: Orbax warns about each it switches off
            options = ocp.CheckpointManagerOptions(
                read_only=True, create=False, max_to_keep=None, save_interval_steps=0,
                enable_async_checkpointing=False)
        else:
            options = ocp.CheckpointManagerOptions(**self._options)
        return ocp.CheckpointManager(self.directory, options=options)

    def _check_complete(self, step: int, items: list[str]) -> None:
        """Raises if files every finished save has are missing (Orbax may not notice)."""
        root = self.directory / str(step)
        required = ["_CHECKPOINT_METADATA"]
        if str(self.directory).startswith("gs://"):  # Orbax writes steps in place there,
            required += ["commit_success.txt"]  # and this file last
        if "state" in items:
            required += ["state/_METADATA", "state/manifest.ocdbt"]
        if "meta" in items:
            required += ["meta/metadata"]
        if "data" in items:
            required += ["data"]
        missing = [name for name in required if not (root / name).exists()]
        if missing:
            raise FileNotFoundError(f"missing {', '.join(missing)}")

    def _save_error(self, step: int | None, error: Exception) -> UserError:
        step = self._saving if step is None else step
        what = f"checkpoint step {step}" if step is not None else "a checkpoint"
        if _is_disk_full(f"{error} {error.__cause__}"):
            return self._disk_full_error(what)
        return UserError(
            f"could not write {what} under {self.directory} ({_short(error)}): free disk "
            "space or use another --workdir; earlier checkpoints are intact"
        )

    def _disk_full_error(self, what: str) -> UserError:
        return UserError(
            f"No space left on device for {what} under {self.directory} "
            f"({self._space_note()}): free disk space or use another --workdir; earlier "
            "checkpoints are intact"
        )

    def _check_space(self) -> None:
        """Refuses a save, before it writes anything, that cannot fit beside the others.

        The estimate is the newest finished step's size (none before the first save, and
        none for a bucket); a save that still runs out of space fails in `wait`.
        """
        done = self._finished_step_dirs()
        if workpath.is_url(self.directory) or not done:
            return
        if shutil.disk_usage(self.directory).free < _tree_bytes(done[-1]):
            raise self._disk_full_error(f"checkpoint step {self._saving}")

    def _finished_step_dirs(self) -> list:
        """The step directories on disk other than the one being saved, oldest first."""
        return [self.directory / str(s) for s in self._step_numbers() if s != self._saving]

    def _space_note(self) -> str:
        """What a step takes (the newest finished one's size) and what is free, if known."""
        if workpath.is_url(self.directory):
            return "a bucket"
        free = shutil.disk_usage(self.directory).free
        done = self._finished_step_dirs()
        if not done:
            return f"{free / 2**20:.1f} MiB free"
        size = _tree_bytes(done[-1])
        return (f"a checkpoint takes about {size / 2**20:.1f} MiB, as step {done[-1].name} "
                f"does; {free / 2**20:.1f} MiB free")

    def _quarantine(self, step: int) -> None:
        src = self.directory / str(step)
        dst = self.directory / f"{step}.damaged-{int(time.time())}"
        src.rename(dst)
        logging.warning("moved damaged checkpoint %s aside to %s", src, dst.name)


def _tree_bytes(root: os.PathLike) -> int:
    """Total size of the files under a local directory."""
    return sum(os.path.getsize(os.path.join(parent, name))
               for parent, _, names in os.walk(root) for name in names)


def _short(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0][:200] if text else type(error).__name__
