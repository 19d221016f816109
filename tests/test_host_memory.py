"""host_memory: huge-page malloc for XLA's large per-call buffers, via one re-exec."""

import json
import os
import platform
import subprocess
import sys

import pytest

from transformer_jax import host_memory

# Restarts itself with huge pages (unless told not to), then a worker thread allocates a
# 256 MiB block with posix_memalign, writes it and frees it, three times, as XLA's CPU
# runtime does with each call's temporary buffer; prints the page faults of each round.
CHILD = """
import ctypes, json, os, resource, threading
from transformer_jax import host_memory
host_memory.reexec_with_huge_pages()
libc = ctypes.CDLL("libc.so.6")
size = 256 * 2**20
faults = []
def work():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        block = ctypes.c_void_p()
        assert libc.posix_memalign(ctypes.byref(block), 64, ctypes.c_size_t(size)) == 0
        ctypes.memset(block, 1, size)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
        libc.free(block)
t = threading.Thread(target=work)
t.start(); t.join()
print(json.dumps({"tunables": os.environ.get("GLIBC_TUNABLES", ""), "faults": faults}))
"""


def _child(tunables: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout)


def test_environment_adds_the_tunable_once_and_respects_the_users(tmp_path, monkeypatch):
    thp = tmp_path / "enabled"
    thp.write_text("always [madvise] never\n")
    monkeypatch.setattr(host_memory, "THP_MODE", thp)
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        assert host_memory.huge_page_environment({}) is None
        return
    env = host_memory.huge_page_environment({"A": "1"})
    assert env == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    other = host_memory.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert other["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert host_memory.huge_page_environment(env) is None  # already set: no second restart
    assert host_memory.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    thp.write_text("always madvise [never]\n")
    assert host_memory.huge_page_environment({}) is None  # huge pages disabled


@pytest.mark.skipif(host_memory.huge_page_environment({}) is None,
                    reason="needs glibc and transparent huge pages not disabled")
def test_restart_backs_large_blocks_with_huge_pages():
    huge = _child(None)
    assert huge["tunables"] == "glibc.malloc.hugetlb=1"
    opted_out = _child("glibc.malloc.hugetlb=0")
    assert opted_out["tunables"] == "glibc.malloc.hugetlb=0"
    # Every round maps a fresh block; 4 KiB pages fault 65,536 times, 2 MiB pages ~128.
    assert min(opted_out["faults"]) > 30_000
    assert max(huge["faults"]) < 5_000
