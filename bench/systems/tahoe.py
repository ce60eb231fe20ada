"""Tahoe-LAFS on loopback: an introducer, 10 storage nodes and one client node, 3-of-10.

Tahoe has no S3, so `TahoeStore` speaks the client node's web API with a pooled
keep-alive HTTP client (urllib3): ``PUT /uri`` makes an unlinked immutable file and
answers its read cap, ``GET /uri/<cap>`` streams it back. The listing workload has
no per-key PUT loop here: adding entries one by one to a mutable directory rewrites
the whole directory each time (O(n^2)), so the equivalent of a bucket is one
immutable directory made in a single ``POST /uri?t=mkdir-immutable`` whose children
are empty (literal) files, and listing is ``GET /uri/<dircap>?t=json``.

Every node uses ``[client] force_foolscap = true`` (and the storage side likewise):
Foolscap was faster than the HTTPS storage protocol on this machine. Tahoe encrypts
convergently, so every body the workloads send is fresh (bench/data.py).
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3

from bench import procs, venvs
from bench.data import CHUNK, NullSink, RandomReader

STORAGE_NODES = 10
ENCODING = {"shares-needed": 3, "shares-happy": 7, "shares-total": 10}


class TahoeStore:
    name = "tahoe"

    def __init__(self, web: str, client_pid: int, cpu_pids: dict[str, list[int]]) -> None:
        self.web = web
        self._pid = client_pid
        # whose CPU time big PUTs and GETs report per GB, by role (bench/cpu.py)
        self.cpu_pids = cpu_pids
        self.http = urllib3.PoolManager(maxsize=64, block=False, retries=False)
        self.caps: dict[str, str] = {}

    def _put(self, body: Any, size: int) -> str:
        resp = self.http.request(
            "PUT",
            f"{self.web}/uri",
            body=body,
            headers={"Content-Length": str(size)},
            timeout=urllib3.Timeout(connect=10, read=None),
        )
        if resp.status not in (200, 201):
            raise RuntimeError(f"tahoe PUT /uri: {resp.status} {resp.data[:300]!r}")
        return resp.data.decode().strip()

    def put_stream(self, key: str, body: RandomReader) -> None:
        self.caps[key] = self._put(body, len(body))

    def _get(self, key: str) -> urllib3.BaseHTTPResponse:
        resp = self.http.request(
            "GET",
            f"{self.web}/uri/{self.caps[key]}",
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=None),
        )
        if resp.status != 200:
            raise RuntimeError(f"tahoe GET {key}: {resp.status} {resp.read()[:300]!r}")
        return resp

    def get_stream(self, key: str, sink: NullSink) -> None:
        resp = self._get(key)
        for chunk in resp.stream(CHUNK):
            sink.write(chunk)
        resp.release_conn()

    def first_byte(self, key: str) -> float:
        start = time.perf_counter()
        resp = self._get(key)
        first = resp.read(1)
        seconds = time.perf_counter() - start
        resp.close()  # the rest is not wanted: drop the connection
        if len(first) != 1:
            raise RuntimeError(f"tahoe GET {key} returned no body")
        return seconds

    def put_small(self, key: str, data: bytes) -> None:
        self.caps[key] = self._put(data, len(data))

    def get_small(self, key: str) -> bytes:
        resp = self.http.request("GET", f"{self.web}/uri/{self.caps[key]}")
        if resp.status != 200:
            raise RuntimeError(f"tahoe GET {key}: {resp.status}")
        return resp.data

    def fill(self, prefix: str, count: int, threads: int) -> None:
        empty = self._put(b"", 0)  # URI:LIT: - an empty file lives in its cap
        children = {
            f"{prefix}{i:07d}": ["filenode", {"ro_uri": empty, "metadata": {}}]
            for i in range(count)
        }
        resp = self.http.request(
            "POST",
            f"{self.web}/uri?t=mkdir-immutable",
            body=json.dumps(children).encode(),
            timeout=urllib3.Timeout(connect=10, read=None),
        )
        if resp.status not in (200, 201):
            raise RuntimeError(f"tahoe mkdir-immutable: {resp.status} {resp.data[:300]!r}")
        self.caps[prefix] = resp.data.decode().strip()

    def list_count(self, prefix: str) -> int:
        resp = self.http.request(
            "GET",
            f"{self.web}/uri/{self.caps[prefix]}?t=json",
            timeout=urllib3.Timeout(connect=10, read=None),
        )
        if resp.status != 200:
            raise RuntimeError(f"tahoe directory listing: {resp.status}")
        _kind, info = json.loads(resp.data)
        return sum(1 for name in info["children"] if name.startswith(prefix))

    def gateway_pid(self) -> int | None:
        return self._pid


def _force_foolscap(node_dir: Path) -> None:
    cfg = configparser.ConfigParser()
    path = node_dir / "tahoe.cfg"
    cfg.read(path)
    for section in ("client", "storage"):
        if not cfg.has_section(section):
            cfg.add_section(section)
        cfg.set(section, "force_foolscap", "true")
    with open(path, "w") as f:
        cfg.write(f)


def _create(tahoe: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [tahoe, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(procs_: list[subprocess.Popen[bytes]]) -> None:
    for p in procs_:
        out, _ = p.communicate(timeout=180)
        if p.returncode != 0:
            raise RuntimeError(f"tahoe create-* failed: {out.decode()[-1000:]}")


@contextmanager
def running(workdir: Path, storage_nodes: int = STORAGE_NODES) -> Iterator[TahoeStore]:
    tahoe = str(venvs.ensure("tahoe") / "tahoe")
    root = workdir / "tahoe"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE",)}
    base = procs.free_port_block(storage_nodes + 2)
    root.mkdir(parents=True, exist_ok=True)
    intro_dir = root / "introducer"
    _finish(
        [
            _create(
                tahoe,
                ["create-introducer", "--listen=tcp", f"--port=tcp:{base}:interface=127.0.0.1",
                 f"--location=tcp:127.0.0.1:{base}", str(intro_dir)],
                env,
            )
        ]
    )  # fmt: skip
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(
            procs.spawn([tahoe, "run", "--allow-stdin-close", str(intro_dir)],
                        root / "introducer.log", env=env)
        )  # fmt: skip
        furl_path = intro_dir / "private" / "introducer.furl"
        procs.wait_until("tahoe introducer", furl_path.exists, 120, started)
        furl = furl_path.read_text().strip()
        web = base + 1
        node_dirs = [root / f"storage-{i + 1:02d}" for i in range(storage_nodes)]
        creating = [
            _create(
                tahoe,
                ["create-node", "--listen=tcp", f"--port=tcp:{base + 2 + i}:interface=127.0.0.1",
                 f"--location=tcp:127.0.0.1:{base + 2 + i}", f"--introducer={furl}",
                 f"--nickname=storage-{i + 1:02d}", "--webport=none", str(d)],
                env,
            )
            for i, d in enumerate(node_dirs)
        ]  # fmt: skip
        client_dir = root / "client"
        enc = [f"--{k}={v}" for k, v in ENCODING.items()]
        creating.append(
            _create(
                tahoe,
                ["create-client", f"--introducer={furl}", "--nickname=client",
                 f"--webport=tcp:{web}:interface=127.0.0.1", *enc, str(client_dir)],
                env,
            )
        )  # fmt: skip
        _finish(creating)
        for d in [*node_dirs, client_dir]:
            _force_foolscap(d)
        for d in node_dirs:
            started.append(
                procs.spawn([tahoe, "run", "--allow-stdin-close", str(d)],
                            root / f"{d.name}.log", env=env)
            )  # fmt: skip
        client = procs.spawn(
            [tahoe, "run", "--allow-stdin-close", str(client_dir)], root / "client.log", env=env
        )
        started.append(client)
        # `tahoe run` stays in the foreground (twistd --nodaemon): each pid is its node
        cpu_pids = {
            "client_node": [client.pid],
            "introducer": [started[0].pid],
            "storage": [p.pid for p in started[1:-1]],
        }
        store = TahoeStore(f"http://127.0.0.1:{web}", client.pid, cpu_pids)

        def connected() -> bool:
            resp = store.http.request("GET", f"{store.web}/?t=json", timeout=5)
            servers = json.loads(resp.data)["servers"]
            return (
                sum(1 for s in servers if s["connection_status"].startswith("Connected"))
                >= storage_nodes
            )

        procs.wait_until(f"tahoe client connecting to {storage_nodes} storage nodes",
                         connected, 180, started)  # fmt: skip
        yield store
    finally:
        procs.stop(list(reversed(started)))
