"""The node's front (node/front.py) on raw sockets: what it serves itself, what it hands
to aiohttp, and both on one keep-alive connection."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from skymesh.codec.merkle import Buffer
from skymesh.node.front import BODY_SLAB, FrontProtocol, parse_head
from skymesh.node.service import NodeService
from skymesh.wire.node import PieceReceipt
from skymesh.wire.signing import ORDER_HEADER, Signed, open_signed
from tests.unit.test_node_api import GET, PUT, Node, error, node_config, pid
from tests.unit.test_piece_store_contract import piece_data

ROUTE = "/v1/pieces/{piece_id}"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    service = NodeService(node_config(tmp_path / "node"), run_loops=False)
    await service.start()
    async with aiohttp.ClientSession() as session:
        yield Node(service, session)
    await service.stop()


class Conn:
    """One raw HTTP/1.1 connection to the node."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", node.service.port))

    async def send(self, data: bytes, piece: int = 0) -> None:
        """Write ``data`` whole, or in writes of ``piece`` bytes each reaching the node alone."""
        step = piece or len(data)
        for i in range(0, len(data), step):
            self.writer.write(data[i : i + step])
            await self.writer.drain()
            if piece:
                await asyncio.sleep(0.0005)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: node"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method == "PUT" and "Transfer-Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(data: bytes, size: int) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


async def test_small_writes_then_pipelined_requests(node: Node) -> None:
    """A head and body split over many small writes; two GETs sent in one write."""
    piece, data = pid(), os.urandom(3000)
    conn = await Conn.open(node)
    await conn.send(request("PUT", f"/v1/pieces/{piece}", node.order(piece, PUT), data), 97)
    status, headers, body = await conn.response()
    assert status == 201 and headers["content-type"] == "application/json"
    receipt = open_signed(msgspec.json.decode(body, type=Signed), PieceReceipt)
    assert (receipt.piece_id, receipt.size) == (piece, len(data))
    get = node.order(piece, GET)
    await conn.send(
        request("GET", f"/v1/pieces/{piece}", get)
        + request("GET", f"/v1/pieces/{piece}", {**get, "Range": "bytes=-100"})
    )
    assert (await conn.response())[::2] == (200, data)
    status, headers, body = await conn.response()
    assert (status, body, headers["content-range"]) == (206, data[-100:], "bytes 2900-2999/3000")
    assert len(node.service.front.connections) == 1  # all served by the front
    conn.close()
    counters = node.service.counters
    assert counters.bytes_received == len(data) and counters.bytes_sent == len(data) + 100
    assert [
        counters.requests[f"{m} {ROUTE} {s}"] for m, s in (("PUT", 201), ("GET", 200), ("GET", 206))
    ] == [1, 1, 1]


async def test_front_and_aiohttp_on_one_connection(node: Node) -> None:
    """Front-served, then an unknown route and a chunked PUT (aiohttp's), then pieces again."""
    first, second, data = pid(), pid(), os.urandom(200_000)
    conn = await Conn.open(node)
    await conn.send(request("PUT", f"/v1/pieces/{first}", node.order(first, PUT), data))
    assert (await conn.response())[0] == 201
    assert len(node.service.front.connections) == 1
    await conn.send(request("GET", "/healthz", {}))
    status, _, body = await conn.response()
    assert status == 200 and msgspec.json.decode(body)["piece_count"] == 1
    assert not node.service.front.connections  # aiohttp's from here on
    await conn.send(
        request(
            "PUT",
            f"/v1/pieces/{second}",
            {**node.order(second, PUT), "Transfer-Encoding": "chunked"},
        )
        + chunked(data, 70_000)
    )
    assert (await conn.response())[0] == 201
    await conn.send(
        request("GET", f"/v1/pieces/{second}", {**node.order(second, GET), "Range": "bytes=5-9"})
    )
    assert (await conn.response())[::2] == (206, data[5:10])
    await conn.send(request("GET", "/v1/pieces/nothex", {}))
    status, _, body = await conn.response()
    assert status == 400 and "invalid piece id" in error(body).message
    conn.close()
    conn = await Conn.open(node)  # the last request of a connection
    await conn.send(
        request("GET", f"/v1/pieces/{first}", {**node.order(first, GET), "Connection": "close"})
    )
    status, headers, body = await conn.response()
    assert (status, headers["connection"], body) == (200, "close", data)
    assert await conn.reader.read() == b""  # closed by the node
    assert piece_data(node.service.store.path(second)) == data
    assert node.service.counters.requests[f"PUT {ROUTE} 201"] == 2


async def test_refused_bodies_are_drained_and_the_connection_kept(node: Node) -> None:
    piece, data = pid(), os.urandom(300_000)
    conn = await Conn.open(node)
    for headers, status, code in [
        ({}, 403, "Forbidden"),  # no order
        (node.order(piece, PUT, max_bytes=1000), 413, "TooLarge"),
    ]:
        await conn.send(request("PUT", f"/v1/pieces/{piece}", headers, data))
        got, _, body = await conn.response()
        assert (got, error(body).code) == (status, code)
    await conn.send(
        request("PUT", f"/v1/pieces/{piece}", node.order(piece, PUT, max_bytes=len(data)), data)
    )
    assert (await conn.response())[0] == 201
    await conn.send(
        request("PUT", f"/v1/pieces/{piece}", node.order(piece, PUT, max_bytes=len(data)), data)
    )
    got, _, body = await conn.response()
    assert (got, error(body).code) == (409, "Conflict")
    await conn.send(
        request("GET", f"/v1/pieces/{piece}", {**node.order(piece, GET), "Range": "bytes=400000-"})
    )
    got, headers, body = await conn.response()
    assert (got, headers["content-range"], error(body).code) == (
        416,
        "bytes */300000",
        "InvalidRange",
    )
    # a refused PUT with the next request behind its body, in one write
    await conn.send(
        request("PUT", f"/v1/pieces/{pid()}", {}, data) + request("GET", "/healthz", {})
    )
    assert [(await conn.response())[0] for _ in range(2)] == [403, 200]
    conn.close()
    refusals = node.service.counters.refusals
    codes = ("Forbidden", "TooLarge", "Conflict", "InvalidRange")
    assert [refusals[c] for c in codes] == [2, 1, 1, 1]
    assert node.service.store.reserved_bytes == 0


async def test_a_client_gone_mid_body_leaves_nothing(node: Node) -> None:
    piece = pid()
    conn = await Conn.open(node)
    head = request("PUT", f"/v1/pieces/{piece}", node.order(piece, PUT, max_bytes=1 << 20))
    await conn.send(
        head.replace(b"Content-Length: 0", b"Content-Length: 1000000") + os.urandom(300_000)
    )
    await asyncio.sleep(0.05)
    conn.writer.transport.abort()
    for _ in range(200):
        if node.service.counters.requests[f"PUT {ROUTE} 400"]:
            break
        await asyncio.sleep(0.01)
    assert node.service.counters.refusals["BadRequest"] == 1
    assert node.stored_files() == [] and node.service.store.reserved_bytes == 0


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /v1/pieces/" + b"ab" * 32 + b" HTTP/1.1\r\nHost node\r\n\r\n",
        b"PUT /v1/pieces/" + b"ab" * 32 + b" HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    ],
    ids=["line too long", "malformed header", "too many headers"],
)
async def test_bad_heads_get_aiohttp_answers(node: Node, head: bytes) -> None:
    conn = await Conn.open(node)
    await conn.send(head)
    status, headers, _ = await conn.response()
    assert status in (400, 431) and headers["content-type"].startswith("text/plain")
    conn.close()


PIECE = b"/v1/pieces/" + b"ab" * 32


@pytest.mark.parametrize(
    "head",
    [
        b"PUT " + PIECE + b" HTTP/1.0\r\nContent-Length: 1",
        b"PUT " + PIECE + b"?x=1 HTTP/1.1\r\nContent-Length: 1",
        b"PUT " + PIECE + b" HTTP/1.1\r\nTransfer-Encoding: chunked",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: +1",
        b"PUT " + PIECE + b" HTTP/1.1",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: 1\r\n folded",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: 1\r\nX-A: caf\xc3\xa9",
        b"PUT " + PIECE + b" HTTP/1.1\r\nContent-Length: 1\r\nConnection: upgrade",
        b"GET " + PIECE + b" HTTP/1.1\r\nRange: bytes=0-1\r\nrange: bytes=2-3",
        b"GET " + PIECE + b" HTTP/1.1\r\nContent-Length: 5",
        b"HEAD " + PIECE + b" HTTP/1.1",
        b"GET " + PIECE.upper() + b" HTTP/1.1",
        b"GET " + PIECE + b"/hashes HTTP/1.1",
    ],
)
def test_heads_the_front_leaves_to_aiohttp(head: bytes) -> None:
    assert parse_head(head) is None


def test_heads_the_front_serves() -> None:
    req = parse_head(
        b"PUT "
        + PIECE
        + b" HTTP/1.1\r\nhost: x\r\ncontent-length:  42 \r\n"
        + ORDER_HEADER.encode()
        + b": abc\r\nConnection: close"
    )
    assert req is not None and (req.method, req.length, req.order, req.close) == (
        "PUT",
        42,
        "abc",
        True,
    )
    req = parse_head(b"GET " + PIECE + b" HTTP/1.1\r\nRange: bytes=1-2\r\nContent-Length: 0")
    assert req is not None and (req.method, req.range, req.close) == ("GET", "bytes=1-2", False)


async def test_a_slow_store_pauses_reading(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of several slabs, taken by the store slower than it arrives."""
    store, write, pauses = node.service.store, node.service.store.write, []
    pause = FrontProtocol._pause

    def counted(self: FrontProtocol) -> None:
        pauses.append(1)
        pause(self)

    monkeypatch.setattr(FrontProtocol, "_pause", counted)

    async def slow(piece_id: str, chunks: AsyncIterator[Buffer], *args: object) -> object:
        async def late() -> AsyncIterator[Buffer]:
            async for chunk in chunks:
                await asyncio.sleep(0.05)
                yield bytes(chunk)

        return await write(piece_id, late(), *args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write", slow)
    piece, data = pid(), os.urandom(BODY_SLAB + 12345)
    status, _ = await node.put(piece, data, node.order(piece, PUT, max_bytes=len(data)))
    assert status == 201 and piece_data(store.path(piece)) == data
    assert pauses  # the socket waited while two slabs were queued
