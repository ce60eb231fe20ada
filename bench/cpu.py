"""CPU seconds each process of a system spends on a workload, per GB moved.

On two shared vCPUs throughput is CPU: every role (client, gateway, coordinator,
nodes) takes its share of the same cores, so "which role spends how many
CPU-seconds per GB" says where a faster data path must come from, and what a
fixed cost (boto3's SHA-256 of every body over plain HTTP) leaves for the rest.
Read from ``/proc/<pid>/stat`` (user + system) before and after; the client is
this process (boto3's threads and the data source), from ``os.times``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


@contextlib.contextmanager
def cpu_per_gb(
    roles: Mapping[str, list[int]], nbytes: int, out: dict[str, float]
) -> Iterator[None]:
    """Fill ``out`` with ``cpu_<role>_s_per_gb`` for each role and the client."""
    before = {r: sum(process_cpu(p) for p in pids) for r, pids in roles.items()}
    client = _self_cpu()
    yield
    gb = nbytes / 1e9
    out["cpu_client_s_per_gb"] = (_self_cpu() - client) / gb
    for role, pids in roles.items():
        out[f"cpu_{role}_s_per_gb"] = (sum(process_cpu(p) for p in pids) - before[role]) / gb


@contextlib.contextmanager
def cpu_per_op(roles: Mapping[str, list[int]], ops: int, out: dict[str, float]) -> Iterator[None]:
    """Fill ``out`` with ``cpu_<role>_ms_per_op``: what one small request costs each role."""
    before = {r: sum(process_cpu(p) for p in pids) for r, pids in roles.items()}
    client = _self_cpu()
    yield
    out["cpu_client_ms_per_op"] = (_self_cpu() - client) * 1e3 / ops
    for role, pids in roles.items():
        spent = sum(process_cpu(p) for p in pids) - before[role]
        out[f"cpu_{role}_ms_per_op"] = spent * 1e3 / ops
