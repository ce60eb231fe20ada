"""Child processes that never outlive the benchmark, and the ports they listen on.

Every system under test runs as a tree of processes. Each child gets its own session
(so a whole tree can be signalled at once) and ``PR_SET_PDEATHSIG`` (so it dies even
if the benchmark itself is killed with SIGKILL, which no ``finally`` can catch).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

from skymesh.children import die_with_parent

_children: list[subprocess.Popen[bytes]] = []


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, logging to ``log_path`` (or a pipe), tracked."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=subprocess.STDOUT if stdout_pipe else log,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    _children.append(proc)
    return proc


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM each process group, wait up to ``timeout`` in all, then SIGKILL the rest."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
        # the leader may be gone while grandchildren linger in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc in _children:
            _children.remove(proc)


def stop_all() -> None:
    """Whatever is still running: the last line of defence on failure or Ctrl-C."""
    stop(list(_children), timeout=5.0)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt so that ``finally`` blocks stop children."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        try:
            stop_all()
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, picked at random."""
    # below the kernel's ephemeral range: Tahoe nodes open listeners on random
    # ephemeral ports at start, which would otherwise land inside our block
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low, 12000) - count - 1
    for _ in range(200):
        base = random.randint(10000, top)
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no block of free loopback ports found; free some ports and retry")


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    alive: Sequence[subprocess.Popen[bytes]],
) -> None:
    """Poll ``check()`` until true; fail early, naming ``what``, if a child exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in alive if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a process exited (code {dead[0].returncode}); see its log")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready within {timeout:.0f} s; see the logs")
