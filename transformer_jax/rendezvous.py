"""Start-up roll call: do all processes of a job show up before `jax.distributed` starts?

When a process never starts, `jax.distributed.initialize` waits, then aborts the others from
C++ (SIGABRT, a stack trace, no Python exception). So first every process checks in with
process 0 over a plain TCP socket on the coordinator's host at port + 1; process 0 answers
everyone once all have joined, or tells those that did how many joined when the time is up.
A missing process becomes one line on every process that is up, naming the coordinator, the
expected and the joined process counts.
"""

from __future__ import annotations

import os
import socket
import time

from transformer_jax.errors import UserError

# How long processes wait for each other at start-up (seconds); the variable overrides it.
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_VAR = "TRANSFORMER_JAX_INIT_TIMEOUT_S"


def timeout_from_env() -> float:
    """$TRANSFORMER_JAX_INIT_TIMEOUT_S, else DEFAULT_TIMEOUT_S (UserError if not > 0)."""
    text = os.environ.get(TIMEOUT_VAR)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise UserError(f"{TIMEOUT_VAR}={text!r}: give the start-up timeout in seconds (> 0)")
    return value


def roll_call(address: str, num_processes: int, process_id: int,
              timeout_s: float | None = None) -> None:
    """Returns once all `num_processes` processes have called it (within `timeout_s`).

    Args:
      address: the coordinator's "host:port" (`jax.distributed`'s); port + 1 is used here.
      num_processes: how many processes the job has.
      process_id: this process's id; 0 hosts the roll call.
      timeout_s: how long to wait for the others (None: `timeout_from_env()`).

    Raises:
      UserError: not every process joined in time (one line: coordinator, expected, joined).
    """
    if num_processes < 2:
        return
    timeout_s = timeout_from_env() if timeout_s is None else timeout_s
    host, _, port = address.rpartition(":")
    where = (host, int(port) + 1)
    if process_id == 0:
        joined = _host(where, num_processes, timeout_s)
    else:
        joined = _join(where, process_id, timeout_s)
    if joined != num_processes:
        seen = "unknown (process 0 never answered)" if joined is None else str(joined)
        raise UserError(
            f"jax.distributed start-up: coordinator {address} expected {num_processes} "
            f"processes, joined within {timeout_s:g} s: {seen}; start the missing ones (or "
            "check --num_processes and the coordinator address)")


def _host(where: tuple[str, int], num_processes: int, timeout_s: float) -> int:
    """Process 0: accepts the others until all joined or the deadline; tells them the count."""
    deadline = time.monotonic() + timeout_s
    peers: list[socket.socket] = []
    with socket.create_server(where, reuse_port=False) as server:
        while len(peers) + 1 < num_processes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            server.settimeout(left)
            try:
                peer, _ = server.accept()
            except TimeoutError:
                break
            peer.settimeout(5)
            if peer.recv(16):  # its id: any reply means a live process of this job
                peers.append(peer)
    joined = len(peers) + 1
    for peer in peers:
        with peer:
            try:
                peer.sendall(f"{joined}\n".encode())
            except OSError:
                pass
    return joined


def _join(where: tuple[str, int], process_id: int, timeout_s: float) -> int | None:
    """Process > 0: checks in with process 0 (retrying until it listens); the joined count."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(where, timeout=2) as conn:
                conn.sendall(f"{process_id}\n".encode())
                # Process 0 answers when all joined or at its deadline: wait a little longer.
                conn.settimeout(max(deadline - time.monotonic(), 0) + 10)
                reply = conn.recv(16)
                return int(reply) if reply.strip() else None
        except (OSError, ValueError):  # not listening yet, or went away: try again
            time.sleep(0.2)
    return None
