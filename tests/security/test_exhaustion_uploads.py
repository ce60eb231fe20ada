"""Uploads cannot exhaust a gateway's memory or leave pieces behind on the nodes.

- Every access key's uploads share one budget of segment buffers: slow PUTs past it
  get ``503 SlowDown`` while the gateway holds no more than the budget.
- Declared lengths hold as the body streams: an aws-chunked body longer than its
  ``x-amz-decoded-content-length`` stops before a byte is stored, and a body with no
  length stops at the single-PUT limit.
- A PUT that fails after its stream was begun (the client hangs up, Content-MD5 or
  the length does not match) is aborted at once: no pending stream stays, and the
  garbage collector's next run (with its default 24 h grace) deletes every piece.
  Only the project that began an upload may abort it.

Bodies go over raw sockets where the test must decide when bytes arrive, signed by
botocore's own signer (``tests/planet/s3raw.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from skymesh.coordinator.db.schema import garbage_pieces, pending_streams, segments
from skymesh.coordinator.service import CoordinatorService
from skymesh.errors import NotFound
from skymesh.gateway.s3.handlers import objects
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire.metainfo import AbortObjectRequest, BeginObjectRequest
from tests.conftest import S3Client, random_bytes
from tests.planet import s3raw
from tests.security.rawhttp import RawRequest

MiB = 1024 * 1024
SEGMENT = 1 * MiB  # the coordinator's max segment size here: bodies of a few MiB are several
PIECES = 5  # pieces of a segment, one per node (scheme 3/4/5/5 on six nodes)
BUDGET = 8 * MiB  # the gateway's buffer budget: eight one-segment buffers
BUCKET = "exhaust"


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("uploads")
    config = PlanetConfig(
        node_count=6,
        # the collector runs only when a test says so, with its default grace of a day
        coordinator_overrides={
            "max_segment_size": SEGMENT,
            "scheme": f"3/4/{PIECES}/{PIECES}",
            "gc_interval": 3600.0,
            "retain_interval": 0.0,
        },
        gateway_overrides={"buffer_budget_bytes": BUDGET, "buffer_wait": 0.3},
    )
    thread = PlanetThread(Planet(root, config)).start()
    try:
        thread.boto3().create_bucket(Bucket=BUCKET)
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def s3(planet: PlanetThread) -> S3Client:
    return planet.boto3()  # retries off: a refusal is seen, not retried


def _coordinator(planet: PlanetThread) -> CoordinatorService:
    coord = planet.planet.coordinator
    assert coord is not None
    return coord


def _count(planet: PlanetThread, table: sa.Table) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    return int(planet.run(_coordinator(planet).db.read(lambda c: c.execute(query).scalar_one())))


def _pieces(planet: PlanetThread) -> int:
    """Piece files on every node."""
    return sum(n.store.piece_count for n in planet.planet.nodes)


class Stored:
    """What the network holds: compared before and after a refused request."""

    def __init__(self, planet: PlanetThread):
        self.planet = planet
        self.pieces = _pieces(planet)
        self.segments = _count(planet, segments)

    def unchanged(self) -> bool:
        p = self.planet
        return (
            _pieces(p) == self.pieces
            and _count(p, segments) == self.segments
            and _count(p, pending_streams) == 0
            and _count(p, garbage_pieces) == 0
        )

    def wait_aborted(self, timeout: float = 10.0) -> None:
        """Until the failed upload's stream is gone (the abort runs beside the answer)."""
        deadline = time.monotonic() + timeout
        while _count(self.planet, pending_streams):
            assert time.monotonic() < deadline, "the failed upload's stream was not aborted"
            time.sleep(0.05)

    def collect(self) -> None:
        """One garbage collector run, then everything is as it was."""
        planet = self.planet
        assert _pieces(planet) > self.pieces, "the upload should have stored pieces"
        assert _count(planet, garbage_pieces) > 0, "its pieces should wait for the collector"
        planet.run(_coordinator(planet).durability.gc.run_once())
        assert self.unchanged()


def _signed(planet: PlanetThread, path: str, headers: dict[str, str]) -> dict[str, str]:
    return s3raw.sign(planet, "PUT", path, "UNSIGNED-PAYLOAD", headers).headers


async def _put(planet: PlanetThread, key: str, length: int) -> RawRequest:
    """A PUT of ``length`` bytes: its headers sent, its body not yet."""
    path = f"/{BUCKET}/{key}"
    headers = _signed(planet, path, {"Content-Length": str(length)})
    return await RawRequest.open(planet.planet.endpoint, "PUT", path, headers)


# ---------------------------------------------------------------- one memory budget


def test_slow_puts_past_the_buffer_budget_get_slowdown(planet: PlanetThread, s3: S3Client) -> None:
    gateway = planet.planet.gateway
    assert gateway is not None
    pool = gateway.buffers
    stored = Stored(planet)
    count = 20  # each holds one 1 MiB segment buffer once its body starts: 8 fit

    async def scenario() -> tuple[list[int], int]:
        puts = [await _put(planet, f"slow-{i}", 4 * SEGMENT) for i in range(count)]
        for put in puts:
            await put.send(b"x" * 1024)  # a trickle, then nothing
        started = time.monotonic()
        answers = await asyncio.gather(
            *(p.answer(timeout=5.0) for p in puts), return_exceptions=True
        )
        refused = [a.status for a in answers if not isinstance(a, BaseException)]
        codes = [
            s3raw.Reply(a.status, a.headers, a.body).code
            for a in answers
            if not isinstance(a, BaseException)
        ]
        assert set(codes) == {"SlowDown"}, codes
        assert time.monotonic() - started < 5.5
        lent = pool.lent
        for put in puts:  # the slow clients give up
            await put.close()
        return refused, lent

    refused, lent = planet.run(scenario())
    assert refused == [503] * (count - BUDGET // SEGMENT)
    assert lent == BUDGET and pool.peak_lent <= BUDGET
    deadline = time.monotonic() + 10
    while pool.lent:  # the hung-up requests end and give their buffers back
        assert time.monotonic() < deadline, f"{pool.lent} bytes still lent"
        time.sleep(0.05)
    assert stored.unchanged()  # none of them got as far as storing a segment
    # and the gateway takes PUTs again, large ones included
    body = random_bytes(3 * SEGMENT + 5, 1)
    s3.put_object(Bucket=BUCKET, Key="after", Body=body)
    assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == body
    assert pool.lent == 0 and pool.peak_lent <= BUDGET


# ---------------------------------------------------------------- declared lengths


def test_aws_chunked_body_longer_than_declared_stores_nothing(planet: PlanetThread) -> None:
    stored = Stored(planet)
    path = f"/{BUCKET}/overlong"
    chunks = [random_bytes(SEGMENT, 2)]  # 1 MiB behind a declared length of 1 byte
    headers = s3raw.chunked_headers(1, s3raw.signed_chunks_length(chunks))
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", headers)
    reply = s3raw.send(planet, "PUT", path, signed.headers, s3raw.signed_chunks(signed, chunks))
    assert stored.unchanged()  # stopped at the chunk's header: not a byte stored
    assert reply.status == 400 and reply.code == "InvalidArgument", reply.body
    assert b"x-amz-decoded-content-length" in reply.body


def test_put_with_no_length_stops_at_the_single_put_limit(
    planet: PlanetThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 3 * SEGMENT  # S3's 5 GiB, scaled down for a test
    monkeypatch.setattr(objects, "MAX_PUT_SIZE", limit)
    stored = Stored(planet)
    path = f"/{BUCKET}/unbounded"

    async def scenario() -> s3raw.Reply:
        headers = {**_signed(planet, path, {}), "Transfer-Encoding": "chunked"}
        put = await RawRequest.open(planet.planet.endpoint, "PUT", path, headers)
        try:
            for i in range(5):  # a byte past the limit is refused, however much follows
                await put.send_chunk(random_bytes(SEGMENT, 10 + i))
            await put.send_chunk(b"")
            answer = await put.answer(timeout=30)
        finally:
            await put.close()
        return s3raw.Reply(answer.status, answer.headers, answer.body)

    reply = planet.run(scenario())
    assert reply.status == 400 and reply.code == "EntityTooLarge", reply.body
    stored.wait_aborted()
    stored.collect()  # the three segments stored before the limit are deleted


# ---------------------------------------------------------------- failed PUTs are aborted


def test_put_whose_client_hangs_up_mid_body_is_aborted(planet: PlanetThread) -> None:
    stored = Stored(planet)

    async def scenario() -> None:
        put = await _put(planet, "hung-up", 4 * SEGMENT)
        await put.send(random_bytes(SEGMENT + SEGMENT // 2, 3))
        # the first segment is stored (and not yet committed) ...
        deadline = time.monotonic() + 20
        while _pieces(planet) < stored.pieces + PIECES:
            assert time.monotonic() < deadline, "the first segment was never stored"
            await asyncio.sleep(0.02)
        await put.close()  # ... when the client goes

    planet.run(scenario())
    stored.wait_aborted()
    stored.collect()


def test_put_failing_its_content_md5_is_aborted(planet: PlanetThread, s3: S3Client) -> None:
    stored = Stored(planet)
    body = random_bytes(2 * SEGMENT + 100, 4)
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="bad-md5", Body=body, ContentMD5=wrong)
    err: dict[str, Any] = e.value.response["Error"]
    assert err["Code"] == "BadDigest"
    stored.wait_aborted()
    stored.collect()
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="bad-md5")


def test_put_shorter_than_its_content_length_is_aborted(planet: PlanetThread) -> None:
    stored = Stored(planet)

    async def scenario() -> None:
        put = await _put(planet, "short", 4 * SEGMENT)
        await put.send(random_bytes(2 * SEGMENT + 7, 5))
        deadline = time.monotonic() + 20
        while _pieces(planet) < stored.pieces + 2 * PIECES:
            assert time.monotonic() < deadline, "the first segments were never stored"
            await asyncio.sleep(0.02)
        put.writer.write_eof()  # the body ends short of its declared length
        await asyncio.sleep(0.5)
        await put.close()

    planet.run(scenario())
    stored.wait_aborted()
    stored.collect()


def test_only_the_project_that_began_an_upload_may_abort_it(planet: PlanetThread) -> None:
    query = sa.select(sa.func.count()).select_from(pending_streams)
    db = _coordinator(planet).db

    async def pending() -> int:
        return int(await db.read(lambda c: c.execute(query).scalar_one()))

    async def scenario() -> None:
        owner = planet.planet.client()
        intruder = planet.planet.client(await planet.planet.create_credential("intruder"))
        try:
            begun = await owner.metainfo.begin_object(
                BeginObjectRequest(
                    bucket=BUCKET, key="mine", encrypted_key=b"k" * 40, first_segment_size=SEGMENT
                )
            )
            mine = AbortObjectRequest(bucket=BUCKET, key="mine", stream_id=begun.stream_id)
            for who, req in (
                (intruder, mine),  # another project's upload
                (owner, msgspec.structs.replace(mine, key="other")),  # not begun for this key
            ):
                with pytest.raises(NotFound) as e:
                    await who.metainfo.abort_object(req)
                assert e.value.code == "NoSuchUpload"
                assert await pending() == 1
            await owner.metainfo.abort_object(mine)
            assert await pending() == 0
        finally:
            await owner.close()
            await intruder.close()

    planet.run(scenario())
