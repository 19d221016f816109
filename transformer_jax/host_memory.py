"""Host memory: back XLA's large CPU buffers with transparent huge pages.

XLA's CPU runtime allocates each call's temporary buffer (about 1 GB for a training step of
the benchmarks' reference model) with `posix_memalign` and frees it when the call ends.
glibc serves a block that large with a fresh `mmap` and unmaps it on free, so on every step
the kernel faults the whole buffer in again, one 4 KiB page at a time: measured 265,000
page faults and 0.6 s of kernel time per 1.6 s step on 2 cores. With glibc's
`glibc.malloc.hugetlb=1` tunable, malloc asks for transparent huge pages on such blocks
(2 MiB pages): about 700 faults and 0.1 s per step, and the memory is still returned to the
system after each call (tested in tests/test_host_memory.py).

glibc reads tunables only when a process starts, so `reexec_with_huge_pages()` restarts the
current command once with the tunable added to its environment. The entrypoints and the
benchmarks call it first thing; a `GLIBC_TUNABLES` that already names `glibc.malloc.hugetlb`
is left alone (set `glibc.malloc.hugetlb=0` to opt out), as are systems without glibc or
with transparent huge pages disabled.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def huge_page_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """`environ` with `glibc.malloc.hugetlb=1` added, or None when it does not apply."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        if "[never]" in THP_MODE.read_text():
            return None
    except OSError:
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, [tunables, f"{TUNABLE}=1"]))}


def reexec_with_huge_pages() -> None:
    """Restarts this command with `huge_page_environment` (no-op when None).

    Call it before doing any work: the process is replaced by a fresh one running the same
    command line (`sys.orig_argv`), which finds the tunable set and carries on.
    """
    environ = huge_page_environment(os.environ)
    if environ is not None and sys.executable:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environ)
