"""Chaos on real processes: rotting disks under a running `skymesh up`.

Random bytes are overwritten inside one node's piece files while the network runs.
Reads stay correct (readers verify every byte), audits catch the node and
disqualify it, and repair rebuilds its pieces elsewhere until every segment is
back at full strength. The coordinator's loops run at test speed through
``SKYMESH_COORDINATOR_*`` variables, which `skymesh up` passes to its children.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import random_bytes
from tests.process.netutil import start_up

pytestmark = pytest.mark.slow

NODES = 8
FAST = {
    "SKYMESH_COORDINATOR_SCHEME": "4/5/6/6",  # 8 nodes: two spares for every segment
    "SKYMESH_COORDINATOR_AUDIT_INTERVAL": "0.2",
    "SKYMESH_COORDINATOR_AUDITS_PER_ROUND": "8",
    "SKYMESH_COORDINATOR_AUDIT_LAMBDA": "0.99",  # disqualified after 5 failures, not 41
    "SKYMESH_COORDINATOR_REPAIR_CHECK_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_REPAIR_INTERVAL": "0.2",
}


def _nodes(coord: int, token: str) -> list[dict[str, object]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{coord}/v1/nodes", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return list(json.loads(resp.read())["nodes"])


def _segment_health(db: Path, node_id: str) -> tuple[int, int]:
    """(pieces still on ``node_id``, segments below their optimal count)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        on_node = conn.execute("SELECT count(*) FROM pieces WHERE node_id = ?", (node_id,))
        left = on_node.fetchone()[0]
        short = conn.execute(
            "SELECT count(*) FROM segments s WHERE s.k > 0 AND (SELECT count(*) FROM pieces p"
            " WHERE p.stream_id = s.stream_id AND p.part = s.part AND p.idx = s.idx) < s.optimal"
        ).fetchone()[0]
        return int(left), int(short)
    finally:
        conn.close()


def _rot(pieces_dir: Path, rng: random.Random) -> int:
    """Overwrite random bytes inside every piece file (sidecars untouched)."""
    count = 0
    for path in pieces_dir.rglob("*"):
        if not path.is_file() or path.suffix == ".meta":
            continue
        data = bytearray(path.read_bytes())
        for _ in range(max(1, len(data) // 4096)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        count += 1
    return count


def test_rotting_disk_is_audited_and_repaired(tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    from skymesh.wire.identity import Identity

    home = tmp_path / "home"
    up = start_up(home, nodes=NODES, env=FAST)
    proc, endpoint, access, secret, coord = (
        up.proc,
        up.endpoint,
        up.access_key,
        up.secret,
        up.ports[1],
    )
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )
        s3.create_bucket(Bucket="chaos")
        objects = {f"o{i}": random_bytes(600_000 + 70_001 * i, seed=50 + i) for i in range(3)}
        for key, data in objects.items():
            s3.put_object(Bucket="chaos", Key=key, Body=data)
        token = json.loads((home / "state.json").read_text())["admin_token"]
        victim = Identity.load(home / "nodes" / "node-01" / "identity.key").id

        assert _rot(home / "nodes" / "node-01" / "pieces", random.Random(7)) >= 1
        # Readers verify every byte and step around the rotten pieces: right after
        # the rot, before any audit or repair, every read is still correct.
        for key, data in objects.items():
            assert s3.get_object(Bucket="chaos", Key=key)["Body"].read() == data

        deadline = time.monotonic() + 90
        while True:
            status = {n["node_id"]: n for n in _nodes(coord, token)}[victim]
            if status["disqualified"]:
                break
            assert time.monotonic() < deadline, f"not disqualified: {status}"
            time.sleep(0.5)

        db = home / "coordinator" / "coordinator.db"
        deadline = time.monotonic() + 120
        while (health := _segment_health(db, victim)) != (0, 0):
            assert time.monotonic() < deadline, f"repair incomplete: {health}"
            time.sleep(0.5)
        for key, data in objects.items():
            assert s3.get_object(Bucket="chaos", Key=key)["Body"].read() == data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
