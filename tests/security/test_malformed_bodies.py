"""Malformed bodies to every role: an error of the caller's, never a 500, and nothing changed.

- **Coordinator.** Every route of ``wire.routes.COORDINATOR_ROUTES`` that takes a
  body (and the batch-scoped copies), called as its caller would be (admin token,
  project key, a batch order), gets bodies that are not JSON, JSON of the wrong type
  at the top and in each field, nested far past Python's recursion limit, and past
  ``MAX_RPC_BODY`` (declared, or streamed without a length). Each answers ``400``
  or ``413`` with an ``ErrorBody``, and every table of the database is as it was.
- **Nodes.** The JSON and msgpack bodies a node reads: retain filters (behind a
  valid signed order naming the body's digest), and on a compute node the batch,
  read and inference requests.
- **Gateway.** The XML body of every S3 control operation: not XML, the wrong
  root, unclosed, with a DTD, not UTF-8, nested deep, and past the operation's cap
  (``MalformedXML``, ``MaxMessageLengthExceeded``); ``aws-chunked`` bodies framed
  wrong (a bad chunk size, no CRLF after the data, no chunk signature, trailers
  that were not declared or are not ``name:value``, an early end) and HTTP chunked
  bodies framed wrong. Each is S3's error, and nothing is stored.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import blake3
import msgspec
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from skymesh.coordinator.db.schema import metadata, pending_streams
from skymesh.gateway.s3.xml import (
    MAX_ACL_BODY,
    MAX_COMPLETE_BODY,
    MAX_CORS_BODY,
    MAX_CREATE_BUCKET_BODY,
    MAX_DELETE_BODY,
    MAX_TAGGING_BODY,
    MAX_VERSIONING_BODY,
)
from skymesh.node.service import NodeService
from skymesh.rpc import MAX_RPC_BODY
from skymesh.testing.planet import PlanetThread
from skymesh.wire import routes
from skymesh.wire.base import ErrorBody
from skymesh.wire.durability import RETAIN_PATH, RetainOrder
from skymesh.wire.identity import Identity
from skymesh.wire.signing import ORDER_HEADER, encode_header, sign
from tests.conftest import S3Client
from tests.planet import s3raw
from tests.security.rawhttp import RawRequest
from tests.security.test_orders import COORD, batch_order, inference_order, node_config
from tests.unit.test_coordinator_support import ADMIN_TOKEN, FakeNode, Harness, running

DEEP = 100_000  # levels of nesting: far past Python's recursion limit, 200 KB of JSON


def nested_json(depth: int = DEEP) -> bytes:
    """An object whose one (unknown) field nests ``depth`` arrays: decoders skip an
    unknown field by recursing into it."""
    return b'{"zz":' + b"[" * depth + b"]" * depth + b"}"


# ================================================================ coordinator


@dataclass(frozen=True)
class Target:
    """One coordinator route that reads a body, and how its caller calls it."""

    route: routes.Route[Any, Any]
    path: str
    scoped: bool = False  # under SCOPE_PREFIX, with a batch order

    def __str__(self) -> str:
        return f"{self.route.method} {self.path}"


TARGETS = tuple(Target(r, r.path) for r in routes.COORDINATOR_ROUTES if r.has_body) + tuple(
    Target(r, routes.SCOPE_PREFIX + r.path, scoped=True) for r in routes.BATCH_SCOPED if r.has_body
)


def _headers(h: Harness, target: Target) -> dict[str, str]:
    """What lets ``target``'s caller past the check that runs before the body is read."""
    caller = routes.Caller.BATCH_ORDER if target.scoped else target.route.caller
    if caller is routes.Caller.ADMIN:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if caller in (routes.Caller.PROJECT, routes.Caller.PROJECT_OR_ADMIN):
        return {"Authorization": f"Bearer {h.project.api_key}"}
    if caller is routes.Caller.BATCH_ORDER:
        return {ORDER_HEADER: batch_order(Identity.generate().id, signer=h.service.identity)}
    return {}


def _url(h: Harness, target: Target) -> str:
    params = {"project": h.project.project_id, "operator": "op", "key_id": "k"}
    return h.service.url + target.path.format(**params)


async def _snapshot(h: Harness) -> dict[str, list[str]]:
    """Every row of every table, to compare before and after."""

    def read(conn: sa.Connection) -> dict[str, list[str]]:
        return {
            t.name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(t)))
            for t in metadata.sorted_tables
        }

    return await h.service.db.read(read)


async def _post(h: Harness, target: Target, body: bytes) -> tuple[int, ErrorBody | bytes]:
    headers = {"Content-Type": "application/json", **_headers(h, target)}
    async with h.session.request(
        target.route.method, _url(h, target), data=body, headers=headers
    ) as r:
        raw = await r.read()
        try:
            return r.status, msgspec.json.decode(raw, type=ErrorBody)
        except msgspec.DecodeError:
            return r.status, raw


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(tmp_path) as h:
        await h.create_bucket("bucket")
        yield h


def _wrong_value(kind: Any) -> Any:
    """A JSON value that ``kind`` does not take (None when it takes them all)."""
    for candidate in (12345, "text", [1], {"a": 1}, True, None):
        try:
            msgspec.json.decode(msgspec.json.encode(candidate), type=kind)
        except msgspec.ValidationError:
            return candidate
    return None


def _wrong_fields(kind: type[Any]) -> Iterator[tuple[str, bytes]]:
    """For each field of ``kind``: its JSON name and an object giving it a wrong type."""
    for f in msgspec.structs.fields(kind):
        value = _wrong_value(f.type)
        if value is not None:
            yield f.encode_name, msgspec.json.encode({f.encode_name: value})


NOT_JSON = (b"", b"not json", b"{", b'{"name": "x"', b"\xff\xfe{}", b'{"a": 1}}')
WRONG_TOP = (b"[]", b'"text"', b"1", b"null", b"true", b"[{}]")


async def test_malformed_json_bodies_get_400_on_every_route(coordinator: Harness) -> None:
    h = coordinator
    before = await _snapshot(h)
    for target in TARGETS:
        for body in (*NOT_JSON, *WRONG_TOP):
            status, error = await _post(h, target, body)
            assert status == 400, (str(target), body, error)
            assert isinstance(error, ErrorBody) and error.code == "BadRequest", (str(target), body)
        for name, body in _wrong_fields(target.route.request):
            status, error = await _post(h, target, body)
            assert status == 400, (str(target), body, error)
            assert isinstance(error, ErrorBody) and f"$.{name}" in error.message, (
                str(target),
                error,
            )
    assert await _snapshot(h) == before


async def test_deeply_nested_json_gets_400_on_every_route(coordinator: Harness) -> None:
    h = coordinator
    before = await _snapshot(h)
    for target in TARGETS:
        first = msgspec.structs.fields(target.route.request)[0].encode_name
        # node routes read at most NODE_BODY_LIMIT: nest within it (still far past
        # the recursion limit)
        deep = DEEP if target.route.caller is not routes.Caller.NODE else 5_000
        for body in (
            nested_json(deep),
            b"[" * deep + b"]" * deep,
            b'{"zz":' + b'{"a":' * deep + b"1" + b"}" * deep + b"}",
            b'{"%s":' % first.encode() + b"[" * deep + b"]" * deep + b"}",
        ):
            status, error = await _post(h, target, body)
            assert status == 400, (str(target), body[:20], error)
            assert isinstance(error, ErrorBody) and error.code == "BadRequest"
    assert await _snapshot(h) == before


async def test_a_body_declared_past_the_cap_is_refused_before_it_is_read(
    coordinator: Harness,
) -> None:
    """A declared length over ``MAX_RPC_BODY`` is answered at once: the coordinator
    neither waits for nor buffers 64 MiB it will refuse (a node route takes no key)."""
    h = coordinator
    before = await _snapshot(h)
    for target in TARGETS:
        headers = {
            **_headers(h, target),
            "Content-Type": "application/json",
            "Content-Length": str(MAX_RPC_BODY + 1),
        }
        path = urlsplit(_url(h, target)).path
        raw = await RawRequest.open(h.service.url, target.route.method, path, headers)
        try:
            await raw.send(b'{"name": "')  # a few bytes of the promised 64 MiB
            answer = await raw.answer()
        finally:
            await raw.close()
        assert answer.status == 413, (str(target), answer.body[:200])
        error = msgspec.json.decode(answer.body, type=ErrorBody)
        assert error.code == "RequestEntityTooLarge", (str(target), error)
    assert await _snapshot(h) == before


@pytest.mark.parametrize("route", [routes.JOIN, routes.CREATE_BUCKET], ids=str)
async def test_a_body_streamed_past_the_cap_is_refused(
    coordinator: Harness, route: routes.Route[Any, Any]
) -> None:
    """Without a length (chunked), the body is cut at ``MAX_RPC_BODY``: 413."""
    h = coordinator
    before = await _snapshot(h)
    target = Target(route, route.path)
    headers = {**_headers(h, target), "Content-Type": "application/json"}
    block = b" " * (1024 * 1024)

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(MAX_RPC_BODY // len(block) + 8):
            yield block

    async with h.session.post(_url(h, target), data=endless(), headers=headers) as r:
        assert r.status == 413, await r.read()
        error = msgspec.json.decode(await r.read(), type=ErrorBody)
    assert error.code == "RequestEntityTooLarge"
    assert await _snapshot(h) == before


async def test_a_join_with_a_nested_join_token_is_refused(coordinator: Harness) -> None:
    """The join token is read from a node's self-signed join: anyone can send one."""
    h = coordinator
    before = await _snapshot(h)

    node = FakeNode(region="eu-west", operator="op")
    token = "smj1_" + base64.urlsafe_b64encode(
        b"\x81\xa1x" + b"\x91" * 5000 + b"\x90"
    ).decode().rstrip("=")
    body = msgspec.json.encode(node.join_request(h.clock.now, join_token=token))
    status, error = await _post(h, Target(routes.JOIN, routes.JOIN.path), body)
    assert status == 403, error
    assert isinstance(error, ErrorBody) and error.code == "JoinTokenInvalid"
    assert await _snapshot(h) == before


# ================================================================ nodes


@pytest.fixture
async def compute_node(tmp_path: Path) -> AsyncIterator[tuple[NodeService, aiohttp.ClientSession]]:
    config = node_config(tmp_path / "node", compute=True, compute_threads=1)
    service = NodeService(config, run_loops=False)
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield service, session
    finally:
        await service.stop()


def _retain_order(node: NodeService, body: bytes, created_at: float) -> str:
    order = RetainOrder(
        node_id=node.node_id,
        created_at=created_at,
        size=len(body),
        digest=blake3.blake3(body).digest(),
    )
    return encode_header(sign(COORD, order))


def _filter(node_id: str, created_at: float, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "node_id": node_id,
        "created_at": created_at,
        "stored_before": created_at - 3600,
        "piece_count": 0,
        "num_bits": 64,
        "hashes": 1,
        "seed": b"\0" * 32,
        "bits": b"\0" * 8,
        **fields,
    }
    return msgspec.msgpack.encode(values)


async def test_malformed_retain_filters_are_refused(
    compute_node: tuple[NodeService, aiohttp.ClientSession],
) -> None:
    node, session = compute_node
    now = time.time()
    bodies = {
        "not msgpack": b"\xc1\xc1\xc1",
        "empty": b"",
        "a list": msgspec.msgpack.encode([1, 2, 3]),
        "truncated": _filter(node.node_id, now)[:-3],
        "wrong types": _filter(node.node_id, now, num_bits="64", seed=12),
        "nested deep": b"\x81\xa2zz" + b"\x91" * DEEP + b"\x90",
        "another node's": _filter("f" * 40, now),
        "bits of the wrong length": _filter(node.node_id, now, bits=b"\0" * 3),
        "zero hashes": _filter(node.node_id, now, hashes=0),
        "stored after created": _filter(node.node_id, now, stored_before=now + 1),
    }
    for name, body in bodies.items():
        headers = {ORDER_HEADER: _retain_order(node, body, now)}
        async with session.post(node.address + RETAIN_PATH, data=body, headers=headers) as r:
            raw = await r.read()
            assert r.status == 400, (name, raw[:200])
            assert msgspec.json.decode(raw, type=ErrorBody).code == "BadRequest", name
        assert node.retainer.pending is None, name
    # the node still takes a good filter
    good = _filter(node.node_id, now)
    headers = {ORDER_HEADER: _retain_order(node, good, now)}
    async with session.post(node.address + RETAIN_PATH, data=good, headers=headers) as r:
        assert r.status == 202, await r.read()
    assert node.retainer.pending is not None


def _order(node: NodeService, kind: str) -> str:
    if kind == "inference":
        return inference_order(node.node_id)
    return batch_order(node.node_id, purpose=kind)


@pytest.mark.parametrize(
    ("path", "order"),
    [
        ("/v1/infer/embeddings", "inference"),
        ("/v1/infer/chat", "inference"),
        ("/v1/batch/run", "batch"),
        ("/v1/infer/embeddings-object", "read"),
    ],
)
async def test_malformed_compute_bodies_are_refused(
    compute_node: tuple[NodeService, aiohttp.ClientSession], path: str, order: str
) -> None:
    node, session = compute_node
    bodies = (*NOT_JSON, *WRONG_TOP, nested_json(), b"[" * DEEP + b"]" * DEEP)
    for body in bodies:
        header = _order(node, order)
        async with session.post(
            node.address + path, data=body, headers={ORDER_HEADER: header}
        ) as r:
            raw = await r.read()
            assert r.status == 400, (path, body[:20], raw[:200])
            assert msgspec.json.decode(raw, type=ErrorBody).code == "BadRequest"
    # a body past the node's 1 MiB limit for JSON requests
    header = _order(node, order)
    huge = b'{"model": "' + b"m" * (2 * 1024 * 1024) + b'"}'
    async with session.post(node.address + path, data=huge, headers={ORDER_HEADER: header}) as r:
        assert r.status == 413, await r.read()
        msgspec.json.decode(await r.read(), type=ErrorBody)
    assert node.batches is not None and node.batches.runs == {}
    assert node.compute is not None and node.compute.pool.depth == 0


# ================================================================ gateway: XML bodies


BUCKET = "malformed"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


@dataclass(frozen=True)
class Control:
    """An S3 operation with an XML body: where it goes, its root element and its cap."""

    name: str
    method: str
    path: str  # "{upload}" is the test's multipart upload
    root: str
    cap: int
    malformed: str = "MalformedXML"  # S3's code for a body that is not its document
    empty: str = "MalformedXML"  # and for an empty one ("": none, the body is optional)


CONTROLS = (
    Control("CreateBucket", "PUT", "/malformed-new", "CreateBucketConfiguration",
            MAX_CREATE_BUCKET_BODY, empty=""),
    Control("PutBucketVersioning", "PUT", f"/{BUCKET}?versioning", "VersioningConfiguration",
            MAX_VERSIONING_BODY),
    Control("PutBucketAcl", "PUT", f"/{BUCKET}?acl", "AccessControlPolicy", MAX_ACL_BODY,
            malformed="MalformedACLError", empty="InvalidRequest"),
    Control("PutObjectAcl", "PUT", f"/{BUCKET}/k?acl", "AccessControlPolicy", MAX_ACL_BODY,
            malformed="MalformedACLError", empty="InvalidRequest"),
    Control("PutBucketTagging", "PUT", f"/{BUCKET}?tagging", "Tagging", MAX_TAGGING_BODY),
    Control("PutObjectTagging", "PUT", f"/{BUCKET}/k?tagging", "Tagging", MAX_TAGGING_BODY),
    Control("PutBucketCors", "PUT", f"/{BUCKET}?cors", "CORSConfiguration", MAX_CORS_BODY),
    Control("DeleteObjects", "POST", f"/{BUCKET}?delete", "Delete", MAX_DELETE_BODY),
    Control("CompleteMultipartUpload", "POST", f"/{BUCKET}/mp?uploadId={{upload}}",
            "CompleteMultipartUpload", MAX_COMPLETE_BODY),
)  # fmt: skip


@pytest.fixture(scope="module")
def gateway_state(planet: PlanetThread, s3: S3Client) -> dict[str, str]:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"keep me")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mp")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=upload, PartNumber=1, Body=b"part")
    return {"upload": upload}


def _code(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as e:
        return e.response["Error"]["Code"]


def _s3_state(s3: S3Client, upload: str) -> dict[str, Any]:
    """What any control operation here could change."""
    b = BUCKET
    return {
        "buckets": sorted(x["Name"] for x in s3.list_buckets()["Buckets"]),
        "versioning": s3.get_bucket_versioning(Bucket=b).get("Status"),
        "bucket acl": s3.get_bucket_acl(Bucket=b)["Grants"],
        "object acl": s3.get_object_acl(Bucket=b, Key="k")["Grants"],
        "bucket tags": _code(lambda: s3.get_bucket_tagging(Bucket=b)["TagSet"]),
        "object tags": s3.get_object_tagging(Bucket=b, Key="k")["TagSet"],
        "cors": _code(lambda: s3.get_bucket_cors(Bucket=b)["CORSRules"]),
        "keys": [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])],
        "data": s3.get_object(Bucket=b, Key="k")["Body"].read(),
        "parts": [
            p["PartNumber"]
            for p in s3.list_parts(Bucket=b, Key="mp", UploadId=upload).get("Parts", [])
        ],
    }


def _bodies(control: Control) -> dict[str, tuple[bytes, str]]:
    """Malformed bodies of ``control``'s operation and S3's error code for each."""
    root, bad = control.root, control.malformed
    return {
        "not xml": (b"this is not XML", bad),
        "wrong root": (f"<Wrong {NS}><Status>Enabled</Status></Wrong>".encode(), bad),
        "unclosed": (f"<{root} {NS}><Status>".encode(), bad),
        "not utf-8": (f"<{root}>".encode() + b"\xff\xfe" + f"</{root}>".encode(), bad),
        "dtd": (
            f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            f"<{root}>&e;</{root}>".encode(),
            bad,
        ),
        "billion laughs": (
            f'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            f"<{root}>&b;&b;&b;</{root}>".encode(),
            bad,
        ),
        "unknown encoding": (
            f'<?xml version="1.0" encoding="X-NOPE"?><{root}></{root}>'.encode(),
            bad,
        ),
        # 8000 elements deep, one left unclosed: the parser goes all the way down
        "nested deep": (
            f"<{root}>".encode() + b"<a>" * 8000 + b"</a>" * 7999 + f"</{root}>".encode(),
            bad,
        ),
        "over the cap": (
            f"<{root} {NS}>".encode()
            + b"<!-- padding -->" * (control.cap // 16 + 1)
            + f"</{root}>".encode(),
            "MaxMessageLengthExceeded",
        ),
        "empty": (b"", control.empty),
    }


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_malformed_xml_bodies_get_s3_errors_and_change_nothing(
    planet: PlanetThread, s3: S3Client, gateway_state: dict[str, str], control: Control
) -> None:
    upload = gateway_state["upload"]
    path = control.path.format(upload=quote(upload, safe=""))
    before = _s3_state(s3, upload)
    for name, (body, code) in _bodies(control).items():
        if not code:
            continue
        reply = s3raw.request(planet, control.method, path, body)
        assert (reply.status, reply.code) == (400, code), (control.name, name, reply.body[:300])
        assert _s3_state(s3, upload) == before, (control.name, name)


# ================================================================ gateway: aws-chunked framing

STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
DATA = b"0123456789" * 1000  # over the inline threshold: a segment stored on nodes


def _signed_put(
    planet: PlanetThread, path: str, frame: Callable[[s3raw.Signed], bytes], decoded: int
) -> s3raw.Reply:
    """A signed-chunks PUT whose body ``frame`` builds (given the signature chain)."""
    # the Content-Length is signed, so frame once to learn it, then sign and frame again
    probe = s3raw.Signed({}, b"k" * 32, "20260101T000000Z", "s", "0" * 64)
    length = len(frame(probe))
    headers = s3raw.chunked_headers(decoded, length)
    signed = s3raw.sign(planet, "PUT", path, STREAMING, headers)
    body = frame(signed)
    assert len(body) == length
    return s3raw.send(planet, "PUT", path, signed.headers, body)


def _chunk(signed: s3raw.Signed, previous: str, data: bytes) -> tuple[str, bytes]:
    sig = s3raw.chunk_signature(signed, previous, data)
    return sig, f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"


def _good(signed: s3raw.Signed) -> bytes:
    sig, first = _chunk(signed, signed.seed, DATA)
    _, last = _chunk(signed, sig, b"")
    return first + last


def _replace(old: bytes, new: bytes, count: int = 1) -> Callable[[s3raw.Signed], bytes]:
    def frame(signed: s3raw.Signed) -> bytes:
        good = _good(signed)
        assert old in good
        return good.replace(old, new, count)

    return frame


def _first_line(new: bytes) -> Callable[[s3raw.Signed], bytes]:
    """The first chunk's header line replaced by ``new``."""

    def frame(signed: s3raw.Signed) -> bytes:
        good = _good(signed)
        return new + good[good.index(b"\r\n") :]

    return frame


SIGNED_FRAMINGS = {
    "chunk size not hex": (_first_line(b"zz;chunk-signature=" + b"0" * 64), "InvalidArgument"),
    "chunk size empty": (_first_line(b";chunk-signature=" + b"0" * 64), "InvalidArgument"),
    "chunk size of 17 digits": (
        _first_line(b"0" * 14 + b"3e8;chunk-signature=" + b"0" * 64),
        "InvalidArgument",
    ),
    "chunk size negative": (_first_line(b"-3e8;chunk-signature=" + b"0" * 64), "InvalidArgument"),
    "no chunk signature": (_first_line(b"3e8"), "InvalidArgument"),
    "empty chunk signature": (_first_line(b"3e8;chunk-signature="), "InvalidArgument"),
    "chunk header too long": (
        _first_line(b"3e8;chunk-signature=" + b"0" * 64 + b";x=" + b"y" * 5000),
        "InvalidArgument",
    ),
    "no CRLF after the data": (_replace(DATA + b"\r\n", DATA + b"XX"), "InvalidArgument"),
    "LF only after the data": (_replace(DATA + b"\r\n", DATA + b"\nX"), "InvalidArgument"),
    "no final chunk": (lambda s: _good(s)[: _good(s).index(b"0;chunk")], "IncompleteBody"),
    "data after the final chunk": (lambda s: _good(s) + b"trailing junk", "InvalidArgument"),
    "a wrong chunk signature": (
        lambda s: _good(s).replace(s3raw.chunk_signature(s, s.seed, DATA).encode(), b"f" * 64),
        "SignatureDoesNotMatch",
    ),
}


@pytest.fixture
def stored_nothing(
    planet: PlanetThread, s3: S3Client, gateway_state: dict[str, str]
) -> Iterator[None]:
    """The test's PUTs leave no object, no pending upload and no new piece."""
    coordinator = planet.planet.coordinator
    assert coordinator is not None
    count = sa.select(sa.func.count()).select_from(pending_streams)

    def pending() -> int:
        return int(planet.run(coordinator.db.read(lambda c: c.execute(count).scalar_one())))

    pieces = sum(n.store.piece_count for n in planet.planet.nodes)
    streams = pending()  # the module's multipart upload
    yield
    deadline = time.monotonic() + 10
    while pending() != streams:
        assert time.monotonic() < deadline, "a failed upload was not aborted"
        time.sleep(0.05)
    # pieces stored before the body failed its checks go at the next collection
    planet.run(coordinator.durability.gc.run_once())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == ["k"]
    assert sum(n.store.piece_count for n in planet.planet.nodes) == pieces


@pytest.mark.usefixtures("stored_nothing")
@pytest.mark.parametrize("name", SIGNED_FRAMINGS)
def test_aws_chunked_framing_errors_store_nothing(planet: PlanetThread, name: str) -> None:
    frame, code = SIGNED_FRAMINGS[name]
    reply = _signed_put(planet, f"/{BUCKET}/chunked", frame, len(DATA))
    status = 403 if code == "SignatureDoesNotMatch" else 400
    assert (reply.status, reply.code) == (status, code), (name, reply.body[:300])


def _checksum(data: bytes) -> str:
    import zlib

    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


TRAILER_FRAMINGS = {
    "trailer not name:value": (b"x-amz-checksum-crc32 no colon\r\n\r\n", "MalformedTrailerError"),
    "trailer not declared": (b"x-amz-meta-evil:1\r\n\r\n", "MalformedTrailerError"),
    "trailer repeated": (
        b"x-amz-checksum-crc32:%s\r\nx-amz-checksum-crc32:%s\r\n\r\n"
        % (_checksum(DATA).encode(), _checksum(DATA).encode()),
        "MalformedTrailerError",
    ),
    "trailer missing": (b"\r\n", "MalformedTrailerError"),
    "trailer line too long": (
        b"x-amz-checksum-crc32:" + b"A" * 5000 + b"\r\n\r\n",
        "InvalidArgument",
    ),
    "trailer of binary junk": (b"\x00\xff\xfe:\x01\r\n\r\n", "MalformedTrailerError"),
    "trailer checksum wrong": (b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "BadDigest"),
    "trailer checksum not base64": (b"x-amz-checksum-crc32:!!!!\r\n\r\n", "InvalidRequest"),
    "an unexpected trailer signature": (
        b"x-amz-checksum-crc32:%s\r\nx-amz-trailer-signature:%s\r\n\r\n"
        % (_checksum(DATA).encode(), b"0" * 64),
        "MalformedTrailerError",
    ),
}


@pytest.mark.usefixtures("stored_nothing")
@pytest.mark.parametrize("name", TRAILER_FRAMINGS)
def test_aws_chunked_trailer_errors_store_nothing(planet: PlanetThread, name: str) -> None:
    trailer, code = TRAILER_FRAMINGS[name]
    body = f"{len(DATA):x}\r\n".encode() + DATA + b"\r\n0\r\n" + trailer
    headers = s3raw.chunked_headers(len(DATA), len(body), x_amz_trailer="x-amz-checksum-crc32")
    path = f"/{BUCKET}/trailer"
    signed = s3raw.sign(planet, "PUT", path, UNSIGNED_TRAILER, headers)
    reply = s3raw.send(planet, "PUT", path, signed.headers, body)
    assert (reply.status, reply.code) == (400, code), (name, reply.body[:300])


def test_aws_chunked_control_body_framed_wrong_changes_nothing(
    planet: PlanetThread, s3: S3Client, gateway_state: dict[str, str]
) -> None:
    """A control body goes through the same decoder: a framing error is the same error."""
    upload = gateway_state["upload"]
    before = _s3_state(s3, upload)
    path = f"/{BUCKET}?tagging"
    xml = f"<Tagging {NS}><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"
    data = xml.encode()
    framings: list[tuple[Callable[[s3raw.Signed], bytes], str]] = [
        (lambda s: b"zz\r\n" + data + b"\r\n0\r\n\r\n", "InvalidArgument"),
        (lambda s: _chunk(s, s.seed, data)[1][:-2] + b"XX0\r\n\r\n", "InvalidArgument"),
        (lambda s: _chunk(s, s.seed, data)[1], "IncompleteBody"),  # no final chunk
    ]
    for broken, code in framings:
        probe = s3raw.Signed({}, b"k" * 32, "20260101T000000Z", "s", "0" * 64)
        headers = s3raw.chunked_headers(len(data), len(broken(probe)))
        signed = s3raw.sign(planet, "PUT", path, STREAMING, headers)
        reply = s3raw.send(planet, "PUT", path, signed.headers, broken(signed))
        assert (reply.status, reply.code) == (400, code), reply.body[:300]
        assert _s3_state(s3, upload) == before


# ================================================================ gateway: HTTP chunked framing


def _raw_exchange(
    planet: PlanetThread, head: bytes, body: bytes, timeout: float
) -> tuple[int, bytes]:
    """Send ``head`` and ``body`` as they are on one socket; the status and the body."""
    url = urlsplit(planet.planet.endpoint)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
        header, _, rest = data.partition(b"\r\n\r\n")
        status = int(header.split()[1])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
    return status, rest


HTTP_CHUNKED = {  # body, and the answer: aiohttp's own 400, or None (it waits for more)
    "size not hex": (b"zz\r\n0123456789\r\n0\r\n\r\n", 400),
    "size missing": (b"\r\n0123456789\r\n0\r\n\r\n", 400),
    "negative size": (b"-a\r\n0123456789\r\n0\r\n\r\n", 400),
    "no CRLF after the data": (b"a\r\n0123456789XX0\r\n\r\n", 400),
    "data after a chunk's CRLF": (b"a\r\n0123456789\r\nXYZ\r\n0\r\n\r\n", 400),
    "a chunk longer than its data": (b"ff\r\n0123456789\r\n0\r\n\r\n", None),
}


@pytest.mark.usefixtures("stored_nothing")
@pytest.mark.parametrize("name", HTTP_CHUNKED)
def test_http_chunked_framing_errors_store_nothing(planet: PlanetThread, name: str) -> None:
    """HTTP's own chunked framing is aiohttp's to check: a broken one is its 400 (or, for a
    chunk that has not all arrived, a wait for the rest) and never reaches an object."""
    body, expected = HTTP_CHUNKED[name]
    path = f"/{BUCKET}/http-chunked"
    signed = s3raw.sign(planet, "PUT", path, "UNSIGNED-PAYLOAD")
    host = urlsplit(planet.planet.endpoint).netloc
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in signed.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        status: int | None = _raw_exchange(planet, head, body, 5 if expected else 1)[0]
    except TimeoutError:
        status = None  # then the test hangs up
    assert status == expected, name


@pytest.mark.parametrize("route", [routes.JOIN, routes.HEARTBEAT, routes.DRAIN], ids=str)
async def test_node_routes_take_only_small_bodies(
    coordinator: Harness, route: routes.Route[Any, Any]
) -> None:
    """Anyone may call a node route (the body's own signature is the check), so its body is
    capped at NODE_BODY_LIMIT, declared or streamed, not at the 64 MiB of the others."""
    h = coordinator
    before = await _snapshot(h)
    target = Target(route, route.path)
    headers = {
        **_headers(h, target),
        "Content-Type": "application/json",
        "Content-Length": str(routes.NODE_BODY_LIMIT + 1),
    }
    raw = await RawRequest.open(h.service.url, route.method, route.path, headers)
    try:
        await raw.send(b'{"body": "')
        answer = await raw.answer()
    finally:
        await raw.close()
    assert answer.status == 413, answer.body[:200]

    async def streamed() -> AsyncIterator[bytes]:
        yield b'{"body": "'
        for _ in range(4):
            yield b"A" * routes.NODE_BODY_LIMIT

    plain = {**_headers(h, target), "Content-Type": "application/json"}
    async with h.session.post(_url(h, target), data=streamed(), headers=plain) as r:
        assert r.status == 413, await r.read()
        assert msgspec.json.decode(await r.read(), type=ErrorBody).code == "RequestEntityTooLarge"
    assert await _snapshot(h) == before
