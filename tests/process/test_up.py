"""`skymesh up` as real processes: the AWS CLI binary, killed nodes, restarts.

Slow (a dozen processes on two cores), so marked ``slow``; it still runs in CI.
"""

from __future__ import annotations

import filecmp
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import random_bytes, write_random_file
from tests.process.netutil import NODES, Up, aws, start_up

pytestmark = pytest.mark.slow


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = start_up(tmp_path / "home")
    try:
        yield u
    finally:
        u.kill()


def _node_identity(home: Path, name: str) -> str:
    from skymesh.wire.identity import Identity

    return Identity.load(home / "nodes" / name / "identity.key").id


def _put_piece(port: int, header: str, piece_id: str, body: bytes) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/pieces/{piece_id}",
        data=body,
        method="PUT",
        headers={"X-Skymesh-Order": header, "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _stored_piece_files(home: Path, name: str) -> list[Path]:
    return [p for p in (home / "nodes" / name / "pieces").rglob("*") if p.is_file()]


def check_orders_on_node_processes(u: Up) -> None:
    """Forged, expired, replayed and misdirected orders are refused by a real node and store nothing."""
    from skymesh.wire.identity import Identity
    from skymesh.wire.node import Order, PieceAction
    from skymesh.wire.pieces import new_serial
    from skymesh.wire.signing import encode_header, sign

    coordinator = Identity.load(u.home / "coordinator" / "identity.key")
    name, other = "node-03", "node-04"
    port = u.ports[2] + 2
    node_id = _node_identity(u.home, name)
    before = set(_stored_piece_files(u.home, name))
    now = time.time()

    def order(signer: Identity, **kw: Any) -> str:
        fields: dict[str, Any] = dict(
            serial=new_serial(),
            coordinator_id=signer.id,
            node_id=node_id,
            piece_id="ab" * 32,
            action=PieceAction.PUT,
            max_bytes=1024,
            expires_at=now + 600,
            issued_at=now,
        )
        fields.update(kw)
        return encode_header(sign(signer, Order(**fields)))

    piece = "cd" * 32
    forged = order(Identity.generate(), piece_id=piece)
    assert _put_piece(port, forged, piece, b"x" * 100) == 403
    expired = order(coordinator, piece_id=piece, expires_at=now - 1)
    assert _put_piece(port, expired, piece, b"x" * 100) == 403
    misdirected = order(coordinator, piece_id=piece, node_id=_node_identity(u.home, other))
    assert _put_piece(port, misdirected, piece, b"x" * 100) == 403
    other_piece = order(coordinator, piece_id="ef" * 32)
    assert _put_piece(port, other_piece, piece, b"x" * 100) == 403
    too_big = order(coordinator, piece_id=piece, max_bytes=10)
    assert _put_piece(port, too_big, piece, b"x" * 100) == 413
    assert set(_stored_piece_files(u.home, name)) == before, "a refused order stored something"
    good = order(coordinator, piece_id=piece)
    assert _put_piece(port, good, piece, b"x" * 100) == 201
    piece2 = "12" * 32
    replay_src = order(coordinator, piece_id=piece2)
    assert _put_piece(port, replay_src, piece2, b"y" * 10) == 201
    assert _put_piece(port, replay_src, piece2, b"z" * 10) == 403


def test_aws_cli_kill_nodes_and_restart(up: Up, tmp_path: Path) -> None:
    check_orders_on_node_processes(up)

    # the AWS CLI binary: make a bucket, copy 100 MiB in (multipart) and out, list, remove
    big = write_random_file(tmp_path / "big.bin", 100 * 1024 * 1024, seed=7)
    aws(up, "s3", "mb", "s3://demo")
    aws(up, "s3", "cp", str(big), "s3://demo/big.bin")
    listing = aws(up, "s3", "ls", "s3://demo/")
    assert "big.bin" in listing and str(100 * 1024 * 1024) in listing
    back = tmp_path / "back.bin"
    aws(up, "s3", "cp", "s3://demo/big.bin", str(back))
    assert filecmp.cmp(big, back, shallow=False)
    aws(up, "s3", "rm", "s3://demo/big.bin")
    assert "big.bin" not in aws(up, "s3", "ls", "s3://demo/")

    # objects of every shape, through boto3
    s3 = up.s3()
    objects = {
        f"o-{n}": random_bytes(n, seed=n)
        for n in (0, 1, 4096, 4097, 5 * 1024 * 1024, 20 * 1024 * 1024 + 3, 100 * 1024 * 1024)
    }
    for key, data in objects.items():
        s3.put_object(Bucket="demo", Key=key, Body=data)

    # total - k = 4 of the 12 node processes die: every object still reads back
    victims = [f"node-{i:02d}" for i in (1, 2, 6, 11)]
    for name in victims:
        os.kill(up.pid(name), signal.SIGKILL)
    for name in victims:
        pid = up.pid(name)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    for key, data in objects.items():
        assert s3.get_object(Bucket="demo", Key=key)["Body"].read() == data, key
        r = s3.get_object(Bucket="demo", Key=key, Range="bytes=1-4096") if len(data) > 1 else None
        if r is not None:
            assert r["Body"].read() == data[1:4097]

    # a clean stop stops every child; a new start serves the same objects
    names = ["gateway", "coordinator"] + [f"node-{i:02d}" for i in range(1, NODES + 1)]
    pids = {name: up.pid(name) for name in names}
    assert up.stop() == 0
    for name in names:
        with pytest.raises(ProcessLookupError):
            os.kill(pids[name], 0)
        assert not (up.home / "run" / f"{name}.pid").exists()
    again = start_up(up.home, up.ports)
    try:
        s3 = again.s3()
        assert again.access_key == up.access_key
        for key, data in objects.items():
            assert s3.get_object(Bucket="demo", Key=key)["Body"].read() == data, key
    finally:
        again.stop()
