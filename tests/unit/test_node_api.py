"""The node's HTTP API on a real NodeService, loopback, ephemeral port, real disk."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from yarl import URL

from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, chunk_hashes, merkle_root, verify_chunks
from skymesh.config import NodeConfig
from skymesh.node.api import MERKLE_ROOT_HEADER
from skymesh.node.service import NodeService
from skymesh.wire.base import ErrorBody
from skymesh.wire.identity import Identity
from skymesh.wire.node import Order, PieceAction, PieceHashes, PieceReceipt
from skymesh.wire.pieces import derive_piece_id, new_root_piece_id, new_serial
from skymesh.wire.registry import PeerIdentity
from skymesh.wire.signing import ORDER_HEADER, Signed, encode_header, open_signed, sign
from tests.unit.test_piece_store_contract import piece_data

CHUNK = DEFAULT_CHUNK_SIZE  # the protocol's Merkle chunk; nodes and uploaders agree on it
COORD = Identity.generate()
PUT, GET, DELETE = PieceAction.PUT, PieceAction.GET, PieceAction.DELETE


def pid() -> str:
    return derive_piece_id(new_root_piece_id(), 3)


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def node_config(data_dir: Path, **overrides: object) -> NodeConfig:
    values: dict[str, object] = {
        "data_dir": str(data_dir),
        "port": 0,
        "capacity_bytes": 1 << 30,
        "trusted_coordinators": [COORD.public_key.hex()],
        "coordinator_url": closed_port_url(),
    }
    values.update(overrides)
    return msgspec.convert(values, NodeConfig)


class Node:
    """A started NodeService and a session to talk to it."""

    def __init__(self, service: NodeService, session: aiohttp.ClientSession):
        self.service = service
        self.session = session
        self.url = service.address

    def order(
        self,
        piece_id: str,
        action: PieceAction,
        *,
        max_bytes: int = 1 << 20,
        expires_in: float = 60.0,
        serial: str | None = None,
        signer: Identity = COORD,
        node_id: str | None = None,
    ) -> dict[str, str]:
        now = time.time()
        order = Order(
            serial=serial or new_serial(),
            coordinator_id=signer.id,
            node_id=node_id or self.service.node_id,
            piece_id=piece_id,
            action=action,
            max_bytes=max_bytes,
            expires_at=now + expires_in,
            issued_at=now,
        )
        return {ORDER_HEADER: encode_header(sign(signer, order))}

    def piece_url(self, piece_id: str, suffix: str = "") -> URL:
        return URL(f"{self.url}/v1/pieces/{piece_id}{suffix}", encoded=True)

    def stored_files(self) -> list[str]:
        root = self.service.data_dir
        return sorted(
            str(p.relative_to(root))
            for d in ("pieces", "tmp")
            for p in (root / d).rglob("*")
            if p.is_file()
        )

    async def put(
        self, piece_id: str, data: bytes | AsyncIterator[bytes], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        async with self.session.put(self.piece_url(piece_id), data=data, headers=headers) as r:
            return r.status, await r.read()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    service = NodeService(node_config(tmp_path / "node"), run_loops=False)
    await service.start()
    async with aiohttp.ClientSession() as session:
        yield Node(service, session)
    await service.stop()


def all_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*"))


def error(body: bytes) -> ErrorBody:
    return msgspec.json.decode(body, type=ErrorBody)


async def test_identity_and_health(node: Node) -> None:
    async with node.session.get(f"{node.url}/v1/identity") as r:
        peer = msgspec.json.decode(await r.read(), type=PeerIdentity)
    assert (peer.id, peer.public_key, peer.role) == (
        node.service.node_id,
        node.service.identity.public_key,
        "node",
    )
    async with node.session.get(f"{node.url}/healthz") as r:
        health = await r.json()
    assert health["status"] == "ok" and health["used_bytes"] == 0
    assert health["free_bytes"] == 1 << 30


async def test_round_trip(node: Node) -> None:
    data = os.urandom(10 * CHUNK + 1234)
    piece = pid()
    status, body = await node.put(piece, data, node.order(piece, PUT, max_bytes=len(data)))
    assert status == 201, body
    receipt = open_signed(
        msgspec.json.decode(body, type=Signed), PieceReceipt, {node.service.identity.public_key}
    )
    root = merkle_root(chunk_hashes(data, CHUNK))
    assert (receipt.piece_id, receipt.size, receipt.merkle_root) == (piece, len(data), root)
    assert receipt.node_id == node.service.node_id
    assert piece_data(node.service.store.path(piece)) == data

    get = node.order(piece, GET, max_bytes=10 * len(data))
    async with node.session.get(node.piece_url(piece), headers=get) as r:
        assert r.status == 200 and r.headers["Accept-Ranges"] == "bytes"
        assert await r.read() == data

    size = len(data)
    for spec, start, stop in [
        ("bytes=100-199", 100, 200),
        (f"bytes={CHUNK * 2}-", CHUNK * 2, size),
        ("bytes=-500", size - 500, size),
        ("bytes=0-0", 0, 1),
        (f"bytes=10-{size * 2}", 10, size),
        (f"bytes=-{size * 2}", 0, size),
    ]:
        async with node.session.get(node.piece_url(piece), headers={**get, "Range": spec}) as r:
            assert r.status == 206, spec
            assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
            assert await r.read() == data[start:stop], spec

    async with node.session.head(node.piece_url(piece), headers=get) as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == size
        assert bytes.fromhex(r.headers[MERKLE_ROOT_HEADER]) == root

    async with node.session.get(node.piece_url(piece, "/hashes"), headers=get) as r:
        hashes = msgspec.json.decode(await r.read(), type=PieceHashes)
    assert (hashes.size, hashes.chunk_size) == (size, CHUNK)
    assert hashes.leaves == chunk_hashes(data, CHUNK)
    # A reader checks a chunk-aligned range against the root it knows.
    async with node.session.get(
        node.piece_url(piece), headers={**get, "Range": f"bytes={3 * CHUNK}-"}
    ) as r:
        assert verify_chunks(root, hashes.leaves, CHUNK, 3 * CHUNK, await r.read())

    async with node.session.delete(node.piece_url(piece), headers=node.order(piece, DELETE)) as r:
        assert r.status == 204
    assert node.stored_files() == []
    assert node.service.store.used_bytes == 0
    async with node.session.get(node.piece_url(piece), headers=get) as r:
        assert r.status == 404
    async with node.session.delete(node.piece_url(piece), headers=node.order(piece, DELETE)) as r:
        assert r.status == 404
    counters = node.service.counters
    assert counters.pieces_stored == 1 and counters.pieces_deleted == 1
    assert counters.bytes_received == size
    assert counters.requests["PUT /v1/pieces/{piece_id} 201"] == 1


async def test_range_larger_than_the_socket_takes_at_once(node: Node) -> None:
    """The direct sendfile sends what the socket takes; the loop's sendfile the rest."""
    data = os.urandom(12 << 20)
    piece = pid()
    status, body = await node.put(piece, data, node.order(piece, PUT, max_bytes=len(data)))
    assert status == 201, body
    get = node.order(piece, GET, max_bytes=10 * len(data))
    for spec, start, stop in [("bytes=0-", 0, len(data)), ("bytes=12345-9000000", 12345, 9000001)]:
        async with node.session.get(node.piece_url(piece), headers={**get, "Range": spec}) as r:
            assert r.status == 206
            await asyncio.sleep(0.05)  # let the socket buffer fill before reading
            assert await r.read() == data[start:stop], spec
    assert node.service.counters.bytes_sent == 2 * len(data) - 12345 - (len(data) - 9000001)


async def test_chunked_body(node: Node) -> None:
    data = os.urandom(300_000)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 50_000):
            yield data[i : i + 50_000]

    piece = pid()
    status, _ = await node.put(piece, body(), node.order(piece, PUT))
    assert status == 201
    assert piece_data(node.service.store.path(piece)) == data


def _refused_orders(node: Node, piece: str) -> dict[str, dict[str, str]]:
    return {
        "missing order": {},
        "untrusted": node.order(piece, PUT, signer=Identity.generate()),
        "expired": node.order(piece, PUT, expires_in=-1),
        "for node": node.order(piece, PUT, node_id="a" * 40),
        "for piece": node.order(pid(), PUT),
        "allows get, not put": node.order(piece, GET),
    }


async def test_refused_orders_store_nothing(node: Node) -> None:
    piece = pid()
    for reason, headers in _refused_orders(node, piece).items():
        status, body = await node.put(piece, os.urandom(5000), headers)
        assert status == 403, reason
        assert error(body).code == "Forbidden" and reason in error(body).message
    assert node.stored_files() == []
    assert node.service.store.piece_count == 0


async def test_replayed_put_serial(node: Node, tmp_path: Path) -> None:
    piece = pid()
    headers = node.order(piece, PUT)
    assert (await node.put(piece, b"x" * 100, headers))[0] == 201
    async with node.session.delete(node.piece_url(piece), headers=node.order(piece, DELETE)) as r:
        assert r.status == 204
    status, body = await node.put(piece, b"y" * 100, headers)
    assert status == 403 and "already used" in error(body).message
    assert node.stored_files() == []

    # The same order after a restart on the same data dir.
    await node.service.stop()
    service = NodeService(node_config(tmp_path / "node"), run_loops=False)
    await service.start()
    try:
        again = Node(service, node.session)
        status, body = await again.put(piece, b"z" * 100, headers)
        assert status == 403 and "already used" in error(body).message
        assert again.stored_files() == []
    finally:
        await service.stop()


async def test_too_large(node: Node) -> None:
    piece = pid()
    status, body = await node.put(piece, os.urandom(2000), node.order(piece, PUT, max_bytes=1999))
    assert status == 413 and error(body).code == "TooLarge"

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            yield b"e" * 10_000
            await asyncio.sleep(0)

    status, body = await node.put(piece, endless(), node.order(piece, PUT, max_bytes=100_000))
    assert status == 413
    assert node.stored_files() == []
    assert node.service.store.reserved_bytes == 0


async def test_capacity_exceeded(tmp_path: Path) -> None:
    service = NodeService(node_config(tmp_path, capacity_bytes=50_000), run_loops=False)
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            node = Node(service, session)
            piece = pid()
            status, body = await node.put(piece, os.urandom(60_000), node.order(piece, PUT))
            assert status == 507 and error(body).code == "InsufficientStorage"

            async def chunked() -> AsyncIterator[bytes]:
                for _ in range(6):
                    yield os.urandom(10_000)

            status, _ = await node.put(piece, chunked(), node.order(piece, PUT))
            assert status == 507
            assert node.stored_files() == []
            status, _ = await node.put(piece, os.urandom(50_000), node.order(piece, PUT))
            assert status == 201
    finally:
        await service.stop()


async def test_get_allowance(node: Node) -> None:
    piece = pid()
    data = os.urandom(100)
    assert (await node.put(piece, data, node.order(piece, PUT)))[0] == 201
    get = node.order(piece, GET, max_bytes=150)
    async with node.session.get(node.piece_url(piece), headers=get) as r:
        assert r.status == 200 and await r.read() == data
    async with node.session.get(node.piece_url(piece), headers={**get, "Range": "bytes=0-50"}) as r:
        assert r.status == 403 and "allowance exhausted" in error(await r.read()).message
    async with node.session.get(node.piece_url(piece), headers={**get, "Range": "bytes=-50"}) as r:
        assert r.status == 206 and await r.read() == data[-50:]
    # HEAD and hashes are not charged.
    async with node.session.head(node.piece_url(piece), headers=get) as r:
        assert r.status == 200
    async with node.session.get(node.piece_url(piece, "/hashes"), headers=get) as r:
        assert r.status == 200
    async with node.session.get(node.piece_url(piece), headers={**get, "Range": "bytes=0-0"}) as r:
        assert r.status == 403


async def test_bad_ranges(node: Node) -> None:
    piece = pid()
    assert (await node.put(piece, os.urandom(100), node.order(piece, PUT)))[0] == 201
    get = node.order(piece, GET)
    for spec in ["bytes=100-", "bytes=500-600", "bytes=50-10", "bytes=-0"]:
        async with node.session.get(node.piece_url(piece), headers={**get, "Range": spec}) as r:
            assert r.status == 416, spec
            assert r.headers["Content-Range"] == "bytes */100"
    for spec in ["bytes=0-1,5-6", "items=0-5", "bytes=a-b", "bytes=-", "bytes=1"]:
        async with node.session.get(node.piece_url(piece), headers={**get, "Range": spec}) as r:
            assert r.status == 400, spec


@pytest.mark.parametrize(
    "bad", ["..%2Fetc", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "AB" * 32, "abc", "a" * 65]
)
async def test_bad_piece_ids(node: Node, tmp_path: Path, bad: str) -> None:
    before = all_paths(tmp_path)
    url = node.piece_url(bad)
    headers = node.order("ab" * 32, PUT)
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        async with node.session.request(method, url, data=b"evil", headers=headers) as r:
            assert r.status == 400, method
    async with node.session.get(node.piece_url(bad, "/hashes"), headers=headers) as r:
        assert r.status == 400
    assert all_paths(tmp_path) == before
    assert node.service.verifier.serials.count() == 0  # refused before the order was read


async def test_concurrent_puts(node: Node) -> None:
    pieces = {pid(): os.urandom(200_000 + i) for i in range(8)}
    results = await asyncio.gather(*(node.put(p, d, node.order(p, PUT)) for p, d in pieces.items()))
    assert [status for status, _ in results] == [201] * 8
    for p, d in pieces.items():
        assert piece_data(node.service.store.path(p)) == d
    assert node.service.store.used_bytes == sum(map(len, pieces.values()))


async def test_duplicate_put_is_a_conflict(node: Node) -> None:
    piece = pid()
    assert (await node.put(piece, b"one", node.order(piece, PUT)))[0] == 201
    status, body = await node.put(piece, b"two", node.order(piece, PUT))
    assert status == 409 and error(body).code == "Conflict"
    assert piece_data(node.service.store.path(piece)) == b"one"


async def test_used_bytes_survive_restart(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    service = NodeService(config, run_loops=False)
    await service.start()
    async with aiohttp.ClientSession() as session:
        node = Node(service, session)
        for size in (1000, 2000, 3000):
            p = pid()
            assert (await node.put(p, os.urandom(size), node.order(p, PUT)))[0] == 201
        node_id = service.node_id
        await service.stop()
        (tmp_path / "tmp" / "leftover").write_bytes(b"crash debris")

        service = NodeService(config, run_loops=False)
        await service.start()
        try:
            assert service.node_id == node_id  # same identity.key
            assert (service.store.used_bytes, service.store.piece_count) == (6000, 3)
            assert not (tmp_path / "tmp" / "leftover").exists()
            async with session.get(f"{service.address}/healthz") as r:
                assert (await r.json())["used_bytes"] == 6000
        finally:
            await service.stop()
