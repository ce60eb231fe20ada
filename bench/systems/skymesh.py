"""skymesh as an operator runs it: ``skymesh up`` with 12 nodes, real processes, own home.

Started the way tests/process/netutil.py does (free port block, wait for the banner,
keys from it), but under bench/procs.py so that no process outlives the run. Nodes
run with ``--no-fsync``: Tahoe-LAFS does not fsync shares and moto keeps objects in
memory, and on this VM fsync only reaches the host's cache anyway. With ``tls`` it is
``skymesh up --tls``: the gateway serves https with a certificate of the CA ``up``
makes, which boto3 then trusts.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import procs
from bench.systems.s3 import S3Store

NODES = 12


def _drain(stream: object, log: Path) -> None:
    """Keep ``up``'s stdout flowing into its log once the banner has been read."""
    with open(log, "ab") as out:
        for line in stream:  # type: ignore[attr-defined]
            out.write(line)
            out.flush()


@contextmanager
def running(
    workdir: Path,
    nodes: int = NODES,
    args: Sequence[str] = ("--no-compute",),
    spare_ports: int = 0,
    tls: bool = False,
) -> Iterator[S3Store]:
    """``args`` go to `skymesh up`; ``spare_ports`` follow the nodes' (region gateways)."""
    if tls:
        args = (*args, "--tls")
    home = workdir / "skymesh"
    base = procs.free_port_block(nodes + 2 + spare_ports)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    argv = [
        sys.executable, "-m", "skymesh", "up", "--home", str(home), "--nodes", str(nodes),
        "--port", str(base), "--coordinator-port", str(base + 1),
        "--node-base-port", str(base + 2), "--no-fsync", *args, "--log-level", "WARNING",
    ]  # fmt: skip
    log = workdir / "skymesh-up.log"
    proc = procs.spawn(argv, log, env=env, stdout_pipe=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        access = re.search(r"access key id\s+(\S+)", text)
        secret = re.search(r"secret access key\s+(\S+)", text)
        endpoint = re.search(r"S3 endpoint\s+(\S+)", text)
        ca = re.search(r"CA certificate\s+(\S+)", text)
        if not (access and secret and endpoint) or (tls and not ca):
            raise RuntimeError(f"skymesh up did not come up; see {home / 'logs'}:\n{text}")
        threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
        run = home / "run"
        every = {f.stem: int(f.read_text()) for f in run.glob("*.pid")}
        pids = {n: every[n] for n in ("gateway", "coordinator", "node-01")}
        cpu_pids = {
            "gateway": [every["gateway"]],
            "coordinator": [every["coordinator"]],
            "nodes": [p for n, p in every.items() if n.startswith("node-")],
        }
        yield S3Store(
            "skymesh",
            endpoint.group(1),
            access.group(1),
            secret.group(1),
            pid=pids["gateway"],
            profile_pids=pids,
            cpu_pids=cpu_pids,
            verify=ca.group(1) if ca else None,
        )
    finally:
        procs.stop([proc], timeout=30.0)
