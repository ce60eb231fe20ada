"""Orders a node or the coordinator must refuse, each with nothing stored, deleted or served.

An order is the coordinator's signed permission for one action on one piece at one
node (``docs/spec/node-protocol.md`` §4). These tests show real nodes (two, on
loopback, real disk, one with ``--compute``) the orders an attacker could hold or
make: a PUT, DELETE or audit order replayed (also after the node restarts), an
order for node A shown to node B, one for piece X used on piece Y, an expired
one, a GET allowance overdrawn (also by concurrent reads), orders signed by a
second coordinator identity no node trusts, orders of another kind (inference,
batch, retain: each signature covers its type's name, so none passes for another),
and headers with bits flipped or nested past any sane depth. Every refusal must be
the documented ``403`` (``400`` for a header too long for HTTP), and the node's
pieces, spent serials and served bytes must be as they were.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE
from skymesh.config import NodeConfig
from skymesh.node.service import NodeService
from skymesh.rpc import JSON
from skymesh.wire import routes
from skymesh.wire.base import ErrorBody
from skymesh.wire.batch import BatchOrder, BatchStart, ObjectEmbedRequest
from skymesh.wire.durability import RETAIN_PATH, RetainOrder
from skymesh.wire.identity import Identity
from skymesh.wire.inference import EmbedRequest, InferenceOrder
from skymesh.wire.node import Order, PieceAction, PieceReceipt
from skymesh.wire.pieces import derive_piece_id, new_root_piece_id, new_serial
from skymesh.wire.signing import DOMAIN_PREFIX, ORDER_HEADER, Signed, encode_header, sign
from tests.unit.test_coordinator_support import running
from tests.unit.test_piece_store_contract import piece_data

COORD = Identity.generate()  # the coordinator both nodes trust
ROGUE = Identity.generate()  # a second coordinator identity, which no node trusts
PUT, GET, DELETE, AUDIT = PieceAction.PUT, PieceAction.GET, PieceAction.DELETE, PieceAction.AUDIT
DATA = os.urandom(3 * DEFAULT_CHUNK_SIZE + 100)  # four Merkle chunks
MODEL = "all-MiniLM-L6-v2"  # a packaged embedding model (never loaded here)


@dataclass(frozen=True)
class Route:
    """One piece route and the order action it takes."""

    name: str
    action: PieceAction
    method: str
    suffix: str = ""


PIECE_ROUTES = (
    Route("put", PUT, "PUT"),
    Route("get", GET, "GET"),
    Route("head", GET, "HEAD"),
    Route("hashes", GET, "GET", "/hashes"),
    Route("delete", DELETE, "DELETE"),
    Route("audit", AUDIT, "GET", "/audit?chunk=0"),
)


def pid() -> str:
    return derive_piece_id(new_root_piece_id(), 0)


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@dataclass
class Reply:
    status: int
    body: bytes

    @property
    def message(self) -> str:
        return msgspec.json.decode(self.body, type=ErrorBody).message if self.body else ""


class Peer:
    """A running node, the orders a coordinator would sign for it, and its state."""

    def __init__(self, config: NodeConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.service = NodeService(config, run_loops=False)

    @property
    def id(self) -> str:
        return self.service.node_id

    def order(
        self,
        piece: str,
        action: PieceAction,
        *,
        signer: Identity = COORD,
        node_id: str | None = None,
        coordinator_id: str | None = None,
        max_bytes: int = 1 << 24,
        expires_in: float = 600.0,
    ) -> str:
        now = time.time()
        order = Order(
            serial=new_serial(),
            coordinator_id=coordinator_id or signer.id,
            node_id=node_id or self.id,
            piece_id=piece,
            action=action,
            max_bytes=max_bytes,
            expires_at=now + expires_in,
            issued_at=now,
        )
        return encode_header(sign(signer, order))

    async def call(
        self,
        method: str,
        path: str,
        header: str | None,
        data: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if header is not None:
            sent[ORDER_HEADER] = header
        async with self.session.request(
            method, self.service.address + path, data=data, headers=sent
        ) as r:
            return Reply(r.status, await r.read())

    async def piece(self, route: Route, piece: str, header: str | None, **extra: Any) -> Reply:
        data = DATA if route.method == "PUT" else b""
        return await self.call(
            route.method, f"/v1/pieces/{piece}{route.suffix}", header, data, **extra
        )

    async def store(self, piece: str, data: bytes = DATA) -> None:
        reply = await self.call("PUT", f"/v1/pieces/{piece}", self.order(piece, PUT), data)
        assert reply.status == 201, reply.body[:200]

    def state(self) -> tuple[dict[str, bytes], list[tuple[Any, ...]]]:
        """What a refused order must leave as it was: the pieces and their bytes, and
        every spent serial with the bytes served under it."""
        store = self.service.store
        pieces = {p: piece_data(store.path(p)) for p in store.iter_piece_ids()}
        with contextlib.closing(sqlite3.connect(self.service.data_dir / "orders.sqlite3")) as db:
            serials = db.execute("SELECT serial, action, served_bytes FROM serials").fetchall()
        return pieces, sorted(serials)

    async def restart(self) -> None:
        await self.service.stop()
        self.service = NodeService(self.config, run_loops=False)
        await self.service.start()


def node_config(data_dir: Path, **overrides: Any) -> NodeConfig:
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "port": 0,
        "capacity_bytes": 1 << 30,
        "trusted_coordinators": [COORD.public_key.hex()],
        "coordinator_url": closed_port_url(),
        **overrides,
    }
    return msgspec.convert(values, NodeConfig)


@dataclass
class Pair:
    a: Peer  # a compute node
    b: Peer


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with aiohttp.ClientSession() as session:
        a = Peer(node_config(tmp_path / "a", compute=True, compute_threads=1), session)
        b = Peer(node_config(tmp_path / "b"), session)
        await a.service.start()
        await b.service.start()
        try:
            yield Pair(a, b)
        finally:
            await a.service.stop()
            await b.service.stop()


def refused(reply: Reply, route: Route | None, why: str, status: int = 403) -> None:
    """``reply`` is the refusal ``status``, saying ``why`` (HEAD answers carry no body)."""
    assert reply.status == status, (route, reply.body[:300])
    if route is None or route.method != "HEAD":
        assert why in reply.message, (route, reply.message)


# ---------------------------------------------------------------- replays


async def test_replayed_put_delete_and_audit_orders_are_refused_also_after_a_restart(
    pair: Pair,
) -> None:
    a = pair.a
    piece = pid()
    put, delete = a.order(piece, PUT), a.order(piece, DELETE)
    assert (await a.call("PUT", f"/v1/pieces/{piece}", put, DATA)).status == 201
    assert (await a.call("DELETE", f"/v1/pieces/{piece}", delete)).status == 204

    refused(await a.call("PUT", f"/v1/pieces/{piece}", put, b"again"), None, "already used")
    assert a.state()[0] == {}
    await a.store(piece)  # stored again, by a fresh order
    refused(await a.call("DELETE", f"/v1/pieces/{piece}", delete), None, "already used")
    audit = a.order(piece, AUDIT)
    assert (await a.call("GET", f"/v1/pieces/{piece}/audit?chunk=0", audit)).status == 200
    for chunk in (0, 1):  # the same chunk again, or another one: spent either way
        reply = await a.call("GET", f"/v1/pieces/{piece}/audit?chunk={chunk}", audit)
        refused(reply, None, "already used")
    before = a.state()

    await a.restart()  # spent serials are on disk: a restart forgets none
    refused(await a.call("PUT", f"/v1/pieces/{piece}", put, b"again"), None, "already used")
    refused(await a.call("DELETE", f"/v1/pieces/{piece}", delete), None, "already used")
    refused(await a.call("GET", f"/v1/pieces/{piece}/audit?chunk=0", audit), None, "already used")
    assert a.state() == before
    assert before[0] == {piece: DATA}


async def test_an_inference_or_batch_order_is_spent_by_its_first_use(pair: Pair) -> None:
    a = pair.a
    inference = inference_order(a.id)
    # the order is good; the body is not (no input): refused for the body, order spent
    body = msgspec.json.encode(EmbedRequest(model=MODEL, input=[]))
    reply = await a.call("POST", "/v1/infer/embeddings", inference, body, {"Content-Type": JSON})
    assert reply.status == 400, reply.body
    reply = await a.call("POST", "/v1/infer/embeddings", inference, body, {"Content-Type": JSON})
    refused(reply, None, "used before")

    # a batch run starts once (here it fails at once: no coordinator to read from)
    batch = batch_order(a.id)
    keys = msgspec.json.encode(BatchStart(b"i" * 32, b"o" * 32, b"e" * 32))
    assert (await a.call("POST", "/v1/batch/run", batch, keys)).status == 202
    refused(await a.call("POST", "/v1/batch/run", batch, keys), None, "used before")
    assert pair.a.service.batches is not None
    assert list(pair.a.service.batches.runs) == ["batch-1"]

    await a.restart()  # spent on disk with the piece serials: a restart forgets none
    reply = await a.call("POST", "/v1/infer/embeddings", inference, body, {"Content-Type": JSON})
    refused(reply, None, "used before")
    refused(await a.call("POST", "/v1/batch/run", batch, keys), None, "used before")
    assert a.service.batches is not None and not a.service.batches.runs


# ---------------------------------------------------------------- someone else's order


async def test_an_order_for_one_node_is_refused_by_another(pair: Pair) -> None:
    a, b = pair.a, pair.b
    piece = pid()
    await b.store(piece)  # B holds the piece: a refusal is not a mere "not stored"
    before = b.state()
    for route in PIECE_ROUTES:
        reply = await b.piece(route, piece, a.order(piece, route.action))
        refused(reply, route, f"order is for node {a.id}")
    retain = sign(COORD, RetainOrder(node_id=a.id, created_at=time.time(), size=8, digest=b""))
    reply = await b.call("POST", RETAIN_PATH, encode_header(retain), b"8 bytes.")
    refused(reply, None, f"filter is for node {a.id}")
    for path in ("/v1/pieces/" + piece, RETAIN_PATH):
        reply = await b.call("GET" if "pieces" in path else "POST", path, None)
        assert reply.status in (403, 405)
    assert b.state() == before

    # the PUT order B refused is still good where it belongs
    other = pid()
    put = a.order(other, PUT)
    refused(await b.call("PUT", f"/v1/pieces/{other}", put, DATA), None, "order is for node")
    assert (await a.call("PUT", f"/v1/pieces/{other}", put, DATA)).status == 201
    assert b.state() == before


async def test_an_order_for_one_piece_is_refused_for_another(pair: Pair) -> None:
    a = pair.a
    x, y = pid(), pid()
    await a.store(x)
    await a.store(y, DATA[::-1])
    before = a.state()
    for route in PIECE_ROUTES:
        refused(await a.piece(route, y, a.order(x, route.action)), route, f"order is for piece {x}")
    assert a.state() == before

    # refused on the wrong piece, the PUT order is not spent: it still stores its own
    z = pid()
    put = a.order(z, PUT)
    refused(await a.call("PUT", f"/v1/pieces/{pid()}", put, DATA), None, f"order is for piece {z}")
    assert a.state() == before
    assert (await a.call("PUT", f"/v1/pieces/{z}", put, DATA)).status == 201


async def test_an_expired_order_is_refused(pair: Pair) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    before = a.state()
    for expires_in in (-1.0, -7200.0):
        for route in PIECE_ROUTES:
            header = a.order(piece, route.action, expires_in=expires_in)
            refused(await a.piece(route, piece, header), route, "order expired")
    inference = inference_order(a.id, expires_in=-1)
    body = msgspec.json.encode(EmbedRequest(model=MODEL, input=["x"]))
    refused(await a.call("POST", "/v1/infer/embeddings", inference, body), None, "expired")
    batch = batch_order(a.id, expires_in=-1)
    keys = msgspec.json.encode(BatchStart(b"i" * 32, b"o" * 32, b"e" * 32))
    refused(await a.call("POST", "/v1/batch/run", batch, keys), None, "expired")
    assert a.state() == before


# ---------------------------------------------------------------- allowances


async def test_a_get_orders_allowance_is_never_overdrawn(pair: Pair) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    size = len(DATA)
    get = a.order(piece, GET, max_bytes=2 * size)  # what a coordinator signs: two reads

    replies = await asyncio.gather(*(a.call("GET", f"/v1/pieces/{piece}", get) for _ in range(8)))
    served = [r for r in replies if r.status == 200]
    assert len(served) == 2 and all(r.body == DATA for r in served)
    for r in replies:
        if r.status != 200:
            refused(r, None, "allowance exhausted")
    # not one more byte, by any range; HEAD and hashes are free but serve no bytes
    for spec in ("bytes=0-0", "bytes=-1", f"bytes={size - 1}-"):
        reply = await a.call("GET", f"/v1/pieces/{piece}", get, headers={"Range": spec})
        refused(reply, None, "allowance exhausted")
    assert (await a.call("HEAD", f"/v1/pieces/{piece}", get)).body == b""
    assert (await a.call("GET", f"/v1/pieces/{piece}/hashes", get)).status == 200

    # a read the node refuses charges nothing: the whole allowance is left after it
    small = a.order(piece, GET, max_bytes=100)
    for spec in (f"bytes={size}-", "bytes=0-1,5-6", "bytes=-0"):
        reply = await a.call("GET", f"/v1/pieces/{piece}", small, headers={"Range": spec})
        assert reply.status in (400, 416), spec
    reply = await a.call("GET", f"/v1/pieces/{piece}", small, headers={"Range": "bytes=0-99"})
    assert reply.status == 206 and reply.body == DATA[:100]
    reply = await a.call("GET", f"/v1/pieces/{piece}", small, headers={"Range": "bytes=100-100"})
    refused(reply, None, "allowance exhausted")
    # an allowance of 0 reads nothing
    none = a.order(piece, GET, max_bytes=0)
    reply = await a.call("GET", f"/v1/pieces/{piece}", none, headers={"Range": "bytes=0-0"})
    refused(reply, None, "allowance exhausted")

    before = a.state()
    await a.restart()  # bytes served are on disk: a restart refills no allowance
    reply = await a.call("GET", f"/v1/pieces/{piece}", get, headers={"Range": "bytes=0-0"})
    refused(reply, None, "allowance exhausted")
    assert a.state() == before


# ---------------------------------------------------------------- who signed it


async def test_orders_signed_by_an_untrusted_coordinator_are_refused(
    pair: Pair, tmp_path: Path
) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    before = a.state()

    def forged(action: PieceAction) -> str:
        """COORD's key named as the signer of an order ROGUE signed."""
        honest = sign(ROGUE, Order(new_serial(), COORD.id, a.id, piece, action, 1 << 24,
                                   time.time() + 600, time.time()))  # fmt: skip
        return encode_header(Signed(honest.body, COORD.public_key, honest.signature))

    for route in PIECE_ROUTES:
        for header, why in (
            (a.order(piece, route.action, signer=ROGUE), "untrusted key"),
            (a.order(piece, route.action, signer=ROGUE, coordinator_id=COORD.id), "untrusted"),
            (forged(route.action), "bad signature"),
            # signed by the trusted key, naming another coordinator as its signer
            (a.order(piece, route.action, coordinator_id=ROGUE.id), "not its signer"),
        ):
            refused(await a.piece(route, piece, header), route, why)
    assert a.state() == before

    # a node that trusts no coordinator yet (none configured, none pinned) refuses all
    lone = Peer(node_config(tmp_path / "lone", trusted_coordinators=[]), a.session)
    await lone.service.start()
    try:
        for route in PIECE_ROUTES:
            reply = await lone.piece(route, piece, lone.order(piece, route.action))
            refused(reply, route, "trusts no coordinator yet")
        assert lone.state() == ({}, [])
    finally:
        await lone.service.stop()


# ---------------------------------------------------------------- orders of another kind


def inference_order(node_id: str, expires_in: float = 60.0, signer: Identity = COORD) -> str:
    now = time.time()
    order = InferenceOrder(
        serial=new_serial(),
        coordinator_id=signer.id,
        node_id=node_id,
        project_id="p" * 32,
        model=MODEL,
        max_tokens=64,
        expires_at=now + expires_in,
        issued_at=now,
    )
    return encode_header(sign(signer, order))


def batch_order(
    node_id: str, expires_in: float = 600.0, purpose: str = "batch", signer: Identity = COORD
) -> str:
    now = time.time()
    order = BatchOrder(
        serial=new_serial(),
        coordinator_id=signer.id,
        node_id=node_id,
        project_id="p" * 32,
        batch_id="batch-1",
        bucket="b",
        input_key="in.jsonl",
        input_version="0" * 32,
        output_key="out.jsonl",
        output_upload="1" * 32,
        error_key="err.jsonl",
        error_upload="2" * 32,
        model=MODEL,
        endpoint="/v1/embeddings",
        max_tokens=0,
        residency="",
        expires_at=now + expires_in,
        issued_at=now,
        purpose=purpose,  # type: ignore[arg-type]
    )
    return encode_header(sign(signer, order))


def relabelled(signed_header: str, kind: str, signer: Identity = COORD) -> str:
    """The same body, signed by ``signer`` as if it were a ``kind``."""
    raw = base64.urlsafe_b64decode(signed_header + "=" * (-len(signed_header) % 4))
    body = msgspec.msgpack.decode(raw, type=Signed).body
    signature = signer.sign(DOMAIN_PREFIX + kind.encode() + body)
    return encode_header(Signed(body, signer.public_key, signature))


async def test_orders_of_another_kind_never_pass_for_each_other(pair: Pair) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    now = time.time()
    retain = encode_header(
        sign(COORD, RetainOrder(node_id=a.id, created_at=now, size=8, digest=b"d" * 32))
    )
    receipt = encode_header(
        sign(COORD, PieceReceipt(a.id, piece, new_serial(), len(DATA), b"r" * 32, now))
    )
    others = {
        "inference": inference_order(a.id),
        "batch": batch_order(a.id),
        "read": batch_order(a.id, purpose="read"),
        "retain": retain,
        "receipt": receipt,
    }
    before = a.state()
    for route in PIECE_ROUTES:
        piece_order = a.order(piece, route.action)
        # a good order's very bytes, signed as another kind: the domain differs
        mislabelled = [relabelled(piece_order, k) for k in ("InferenceOrder", "BatchOrder")]
        for header in [*others.values(), *mislabelled]:
            refused(await a.piece(route, piece, header), route, "Order has a bad signature")
    assert a.state() == before

    # and piece orders (or other kinds) where inference, batch or retain orders go
    get = a.order(piece, GET)
    embed = msgspec.json.encode(EmbedRequest(model=MODEL, input=["hello"]))
    keys = msgspec.json.encode(BatchStart(b"i" * 32, b"o" * 32, b"e" * 32))
    read = msgspec.json.encode(ObjectEmbedRequest(model=MODEL, input_data_key=b"k" * 32))
    chat = b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":8}' % (
        MODEL.encode()
    )
    cases = (
        ("/v1/infer/embeddings", embed, "InferenceOrder", ("batch", "retain")),
        ("/v1/infer/chat", chat, "InferenceOrder", ("batch", "read", "retain")),
        ("/v1/batch/run", keys, "BatchOrder", ("inference", "retain")),
        ("/v1/infer/embeddings-object", read, "BatchOrder", ("inference", "retain")),
        ("/v1/batch/batch-1", b"", "BatchOrder", ("inference",)),
        ("/v1/batch/batch-1/cancel", b"", "BatchOrder", ("inference",)),
        (RETAIN_PATH, b"8 bytes.", "RetainOrder", ("inference", "batch")),
    )
    for path, body, kind, names in cases:
        method = "GET" if path == "/v1/batch/batch-1" else "POST"
        headers = [get, relabelled(get, "InferenceOrder" if kind != "InferenceOrder" else "Order")]
        headers += [others[n] for n in names]
        for header in headers:
            reply = await a.call(method, path, header, body, {"Content-Type": JSON})
            refused(reply, None, f"{kind} has a bad signature")
    # the piece order's bytes signed in the inference domain verify, but are no
    # InferenceOrder: the node reads the body as the type it expects
    reply = await a.call("POST", "/v1/infer/embeddings", relabelled(get, "InferenceOrder"), embed)
    refused(reply, None, "InferenceOrder body is malformed")

    assert a.state() == before
    assert a.service.batches is not None and a.service.batches.runs == {}
    assert a.service.retainer.pending is None
    assert a.service.compute is not None and a.service.compute.pool.depth == 0


async def test_the_coordinators_scoped_routes_take_only_its_own_batch_orders(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        me = h.service.identity
        node = Identity.generate().id
        now = time.time()
        piece_order = encode_header(
            sign(me, Order(new_serial(), me.id, node, pid(), GET, 1, now + 600, now))
        )
        headers = {
            "a piece order": piece_order,
            "an inference order": inference_order(node, signer=me),
            "a piece order signed as a batch order": relabelled(piece_order, "BatchOrder", me),
            "another coordinator's batch order": batch_order(node, signer=ROGUE),
            "an expired batch order": batch_order(node, expires_in=-1, signer=me),
            "no order": "",
            "a bit-flipped batch order": flip(batch_order(node, signer=me), 40),
            "a nested order": nested_header(),
        }
        for route in routes.BATCH_SCOPED:
            url = h.service.url + routes.SCOPE_PREFIX + route.path
            for why, header in headers.items():
                async with h.session.post(url, data=b"{}", headers={ORDER_HEADER: header}) as r:
                    assert r.status == 403, (route, why, await r.read())
                    error = msgspec.json.decode(await r.read(), type=ErrorBody)
                    assert error.code == "Forbidden", (route, why)


# ---------------------------------------------------------------- tampered headers


def flip(header: str, index: int) -> str:
    """``header`` with one bit flipped in byte ``index`` of the msgpack it encodes."""
    raw = bytearray(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    raw[index] ^= 1 << (index % 8)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def nested_header(depth: int = 5000) -> str:
    """A ``Signed`` map whose one extra field nests ``depth`` arrays deep (small enough
    for a header: a byte per level)."""
    raw = b"\x81\xa1x" + b"\x91" * depth + b"\x90"
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signed_nested_body(depth: int = 5000) -> str:
    """An ``Order`` envelope signed by the trusted key whose body nests ``depth`` deep."""
    body = b"\x81\xa1x" + b"\x91" * depth + b"\x90"
    signature = COORD.sign(DOMAIN_PREFIX + b"Order" + body)
    return encode_header(Signed(body, COORD.public_key, signature))


async def test_every_bit_flipped_order_is_refused_and_spends_nothing(pair: Pair) -> None:
    a = pair.a
    piece = pid()
    put = a.order(piece, PUT)
    raw = base64.urlsafe_b64decode(put + "=" * (-len(put) % 4))
    original = msgspec.msgpack.decode(raw, type=Signed)
    tried = 0
    for i in range(len(raw)):
        header = flip(put, i)
        try:
            same = (
                msgspec.msgpack.decode(
                    base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)), type=Signed
                )
                == original
            )
        except msgspec.DecodeError:
            same = False
        if same:  # a flip msgpack reads the same (none known): the same order
            continue
        tried += 1
        reply = await a.call("PUT", f"/v1/pieces/{piece}", header, DATA)
        assert reply.status == 403, (i, reply.body[:200])
    assert tried > 300
    assert a.state() == ({}, [])
    # and the untouched order still stores the piece: no flip spent its serial
    assert (await a.call("PUT", f"/v1/pieces/{piece}", put, DATA)).status == 201


def _swap_char(header: str, i: int) -> str:
    """``header`` with its ``i``-th character another one of the alphabet. (Not the
    last: its low bits may be padding, and the same bytes are the same order.)"""
    return header[:i] + ("A" if header[i] != "A" else "B") + header[i + 1 :]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("truncated", lambda h: h[: len(h) // 2]),
        ("a character changed", lambda h: _swap_char(h, len(h) // 2)),
        ("not base64", lambda h: "!" + h[1:]),
        ("not ascii", lambda h: "\u00e9" + h[1:]),
        ("doubled", lambda h: h + h),
        ("empty msgpack map", lambda _h: "gA"),
        ("a msgpack string", lambda _h: base64.urlsafe_b64encode(b"\xa3abc").decode()),
        ("nested 5000 deep", lambda _h: nested_header()),
        ("nested 100 deep", lambda _h: nested_header(100)),
        ("a trusted signature over a nested body", lambda _h: signed_nested_body()),
    ],
)
async def test_malformed_order_headers_are_refused(pair: Pair, name: str, make: Any) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    before = a.state()
    for route in PIECE_ROUTES:
        header = make(a.order(piece, route.action))
        reply = await a.piece(route, piece, header)
        assert reply.status == 403, (name, route, reply.body[:300])
    for path, body in (
        ("/v1/infer/embeddings", b'{"model":"m","input":["x"]}'),
        ("/v1/batch/run", b"{}"),
        (RETAIN_PATH, b"x"),
    ):
        reply = await a.call("POST", path, make(inference_order(a.id)), body)
        assert reply.status == 403, (name, path, reply.body[:300])
    assert a.state() == before


async def test_an_order_header_too_long_for_http_is_refused(pair: Pair) -> None:
    a = pair.a
    piece = pid()
    await a.store(piece)
    before = a.state()
    header = a.order(piece, DELETE) + "A" * 10_000
    reply = await a.call("DELETE", f"/v1/pieces/{piece}", header)
    assert reply.status in (400, 431), reply.body[:200]
    assert a.state() == before
