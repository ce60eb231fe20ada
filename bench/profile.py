"""Where skymesh's processes spend their CPU during each workload (``--profile``).

py-spy (its own venv, like the other tools) samples the gateway, the coordinator and
one node from outside, without slowing them much (``--nonblocking``) and without any
change to skymesh. Each workload gets its own recording, so a profile of the 1 GiB
PUT is not mixed with one of 4 KiB requests. Idle threads are not sampled, so a
process's "active" share is its samples over (seconds x rate), summed over its
threads: 100% is one thread running all along. py-spy counts a thread waiting for
the GIL as active, so with worker threads it can pass 100% and overstate CPU use.
The summary keeps the functions with the most samples of their own (leaf frames),
and their files, which is where an optimisation starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench import venvs

RATE = 97  # Hz: not a divisor of common timer rates


@contextlib.contextmanager
def profiling(pids: dict[str, int], out: Path, tag: str) -> Iterator[None]:
    """Record every process in ``pids`` while the block runs; summarise into ``out``."""
    spy = str(venvs.ensure("profile") / "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    recorders: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name, pid in pids.items():
        raw = out / f"{tag}-{name}.txt"
        argv = [spy, "record", "--format", "raw", "--nolineno", "--nonblocking",
                "--rate", str(RATE), "-p", str(pid), "-o", str(raw)]  # fmt: skip
        recorders[name] = (
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            raw,
        )
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        for proc, _ in recorders.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc, _ in recorders.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        summary = [summarise(name, raw, seconds) for name, (_, raw) in recorders.items()]
        (out / f"{tag}-summary.md").write_text(
            f"## {tag} ({seconds:.1f} s)\n\n" + "\n".join(summary)
        )


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{func} ({where})"


def summarise(name: str, raw: Path, seconds: float, top: int = 12) -> str:
    if not raw.exists():
        return f"### {name}\n\nno samples (py-spy could not attach or wrote nothing)\n"
    own: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = _short(stack.split(";")[-1])
        own[leaf] += n
        files[leaf.partition(" (")[2].rstrip(")")] += n
    if not total:
        return f"### {name}\n\nno busy samples\n"
    busy = total / (seconds * RATE) * 100
    lines = [
        f"### {name}: active {busy:.0f}% (samples summed over threads), {total} samples",
        "",
        "| self % | function (file) |",
        "|---:|---|",
        *(f"| {n / total * 100:.1f} | `{f}` |" for f, n in own.most_common(top)),
        "",
        "| self % | file |",
        "|---:|---|",
        *(f"| {n / total * 100:.1f} | `{f}` |" for f, n in files.most_common(8)),
        "",
    ]
    return "\n".join(lines)
