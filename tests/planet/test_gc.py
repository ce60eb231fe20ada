"""Garbage collection and reconciliation on a live network: pieces leave the nodes' disks.

Every way a piece stops being referenced (overwrite, delete, replaced part, abort,
expiry) ends with the collector deleting it from its node; pieces recorded nowhere
(stored with a valid order, never committed) go by reconciliation; committed
pieces and young uploads survive both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import blake3
import msgspec
import pytest
import sqlalchemy as sa

from skymesh.coordinator.db.schema import garbage_pieces, pending_streams, pieces, segments
from skymesh.coordinator.metainfo.expire_uploads import expire_uploads
from skymesh.errors import Forbidden
from skymesh.node.service import NodeService
from skymesh.piecetransfer.exchange import put_piece
from skymesh.testing.planet import Planet, PlanetThread
from skymesh.wire.durability import RETAIN_PATH, RetainFilter, RetainOrder, RetainReport
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import (
    BeginObjectRequest,
    BeginObjectResponse,
    CommitSegmentRequest,
    CommittedPiece,
    Placement,
    SegmentCommit,
    SegmentPosition,
)
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import ORDER_HEADER, encode_header, sign
from tests.conftest import ON_BOTH_ENGINES, S3Client, planet_config, random_bytes

pytestmark = ON_BOTH_ENGINES

Pair = tuple[str, str]  # (node id, piece id)


@pytest.fixture(scope="module")
def planet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, planet_engine: str
) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("gc")
    overrides = {"gc_grace": 0.0, "gc_interval": 3600.0, "retain_interval": 0.0}
    config = planet_config(request, planet_engine, node_count=6, coordinator_overrides=overrides)
    thread = PlanetThread(Planet(root, config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def _referenced(planet: PlanetThread) -> set[Pair]:
    """(node, piece) of every piece of every segment the coordinator holds."""
    coord = planet.planet.coordinator
    assert coord is not None
    query = sa.select(segments.c.root_piece_id, pieces.c.piece_num, pieces.c.node_id).select_from(
        pieces.join(
            segments,
            sa.and_(
                segments.c.stream_id == pieces.c.stream_id,
                segments.c.part == pieces.c.part,
                segments.c.idx == pieces.c.idx,
            ),
        )
    )

    async def read() -> set[Pair]:
        rows = await coord.db.read(lambda c: c.execute(query).all())
        return {(node, derive_piece_id(root, num)) for root, num, node in rows}

    return planet.run(read())


def _queued(planet: PlanetThread) -> set[Pair]:
    coord = planet.planet.coordinator
    assert coord is not None
    query = sa.select(garbage_pieces.c.node_id, garbage_pieces.c.piece_id)
    rows = planet.run(coord.db.read(lambda c: c.execute(query).all()))
    return {(r.node_id, r.piece_id) for r in rows}


def _on_disk(planet: PlanetThread, pairs: set[Pair]) -> set[Pair]:
    nodes = {n.node_id: n for n in planet.planet.nodes if n.started}
    return {(n, p) for n, p in pairs if n in nodes and nodes[n].store.exists(p)}


def _collect(planet: PlanetThread) -> None:
    coord = planet.planet.coordinator
    assert coord is not None
    planet.run(coord.durability.gc.run_once())


def _collects(planet: PlanetThread, operation: object) -> None:
    """Run ``operation``; what it unreferenced is queued, then gone from disk after a run."""
    before = _referenced(planet)
    assert _on_disk(planet, before) == before
    operation() if callable(operation) else None
    after = _referenced(planet)
    gone = before - after
    assert gone, "the operation should have unreferenced some pieces"
    assert gone <= _queued(planet)
    assert _on_disk(planet, gone) == gone  # still there until the collector runs
    coord = planet.planet.coordinator
    assert coord is not None
    deleted_before = coord.durability.gc.totals.deleted
    _collect(planet)
    assert _on_disk(planet, gone) == set()
    assert _on_disk(planet, after) == after  # what is still referenced stays
    assert not (gone & _queued(planet))
    assert coord.durability.gc.totals.deleted - deleted_before >= len(gone)


DATA = 40 * 1024  # over the inline threshold: stored in pieces


def test_overwrite_and_delete_free_the_old_pieces(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-obj")
    s3.put_object(Bucket="gc-obj", Key="k", Body=random_bytes(DATA, 1))
    _collects(planet, lambda: s3.put_object(Bucket="gc-obj", Key="k", Body=random_bytes(DATA, 2)))
    assert s3.get_object(Bucket="gc-obj", Key="k")["Body"].read() == random_bytes(DATA, 2)
    _collects(planet, lambda: s3.delete_object(Bucket="gc-obj", Key="k"))
    coord = planet.planet.coordinator
    assert coord is not None
    assert coord.durability.gc.totals.bytes > 0


def test_replaced_part_and_abort_free_their_pieces(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-mp")
    up = s3.create_multipart_upload(Bucket="gc-mp", Key="m")["UploadId"]
    s3.upload_part(Bucket="gc-mp", Key="m", UploadId=up, PartNumber=1, Body=random_bytes(DATA, 3))

    def reupload() -> None:
        s3.upload_part(
            Bucket="gc-mp", Key="m", UploadId=up, PartNumber=1, Body=random_bytes(DATA, 4)
        )

    _collects(planet, reupload)
    _collects(planet, lambda: s3.abort_multipart_upload(Bucket="gc-mp", Key="m", UploadId=up))


def test_expired_upload_frees_its_pieces(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-exp")
    up = s3.create_multipart_upload(Bucket="gc-exp", Key="m")["UploadId"]
    s3.upload_part(Bucket="gc-exp", Key="m", UploadId=up, PartNumber=1, Body=random_bytes(DATA))
    coord = planet.planet.coordinator
    assert coord is not None
    m = coord.metainfo.context
    past = pending_streams.update().where(pending_streams.c.stream_id == up)

    def expire() -> None:
        planet.run(m.db.write(lambda c: c.execute(past.values(expires_at=time.time() - 1))))
        assert planet.run(expire_uploads(m)) >= 1

    _collects(planet, expire)


def test_offline_node_keeps_its_garbage_for_later(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-off")
    before = _referenced(planet)
    s3.put_object(Bucket="gc-off", Key="k", Body=random_bytes(DATA, 5))
    pieces = _referenced(planet) - before
    # Small networks keep spare nodes, so take a node that holds a piece of it.
    holders = {n for n, _ in pieces}
    p = planet.planet
    node = next(n for n in p.nodes if n.node_id in holders)
    mine = {(n, piece) for n, piece in pieces if n == node.node_id}
    assert mine
    planet.run(p.stop_node(node))
    try:
        s3.delete_object(Bucket="gc-off", Key="k")
        coord = p.coordinator
        assert coord is not None
        stats = planet.run(coord.durability.gc.run_once())
        assert stats.failed + stats.deferred >= len(mine)
        assert mine <= _queued(planet)  # kept for retry
    finally:
        planet.run(p.start_node(node))  # same store, a new port: it joins again
    _collect(planet)
    assert _on_disk(planet, mine) == set()
    assert not (mine & _queued(planet))


# ---------------------------------------------------------------- root piece ids


async def _store_placement(
    planet: PlanetThread, placement: Placement, plain_size: int, block_size: int
) -> SegmentCommit:
    """Store every piece of ``placement`` on its real node, as a client would."""
    client = planet.planet.client()
    try:

        async def body(n: int) -> AsyncIterator[bytes]:
            yield random_bytes(placement.max_piece_size, n)

        receipts = await asyncio.gather(
            *(
                put_piece(
                    client.session,
                    target,
                    placement.root_piece_id,
                    body(target.piece_num),
                    placement.max_piece_size,
                )
                for target in placement.pieces
            )
        )
    finally:
        await client.close()
    return SegmentCommit(
        position=SegmentPosition(),
        plain_size=plain_size,
        block_size=block_size,
        root_piece_id=placement.root_piece_id,
        scheme=placement.scheme,
        piece_size=placement.max_piece_size,
        pieces=[
            CommittedPiece(piece_num=t.piece_num, node_id=t.node_id, receipt=r)
            for t, r in zip(placement.pieces, receipts, strict=True)
        ],
    )


async def _begin(planet: PlanetThread, bucket: str, key: str) -> BeginObjectResponse:
    client = planet.planet.client()
    try:
        return await client.metainfo.begin_object(
            BeginObjectRequest(
                bucket=bucket, key=key, encrypted_key=b"k" * 61, first_segment_size=DATA
            )
        )
    finally:
        await client.close()


async def _commit(planet: PlanetThread, stream_id: str, seg: SegmentCommit) -> None:
    client = planet.planet.client()
    try:
        await client.metainfo.commit_segment(CommitSegmentRequest(stream_id=stream_id, segment=seg))
    finally:
        await client.close()


def test_a_root_commits_only_where_it_was_issued(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-roots")
    coord = planet.planet.coordinator
    assert coord is not None
    a = planet.run(_begin(planet, "gc-roots", "a"))
    b = planet.run(_begin(planet, "gc-roots", "b"))
    seg = planet.run(_store_placement(planet, a.placement, DATA, coord.config.block_size))
    before, queued = _referenced(planet), _queued(planet)
    with pytest.raises(Forbidden, match="not issued for this upload"):
        planet.run(_commit(planet, b.stream_id, seg))  # another stream
    moved = msgspec.structs.replace(seg, position=SegmentPosition(index=1))
    with pytest.raises(Forbidden, match="not issued for this upload"):
        planet.run(_commit(planet, a.stream_id, moved))  # another position
    forged = msgspec.structs.replace(seg, root_piece_id="ab" * 32)
    with pytest.raises(Forbidden):
        planet.run(_commit(planet, a.stream_id, forged))
    assert _referenced(planet) == before and _queued(planet) == queued  # nothing changed
    planet.run(_commit(planet, a.stream_id, seg))  # where it was issued: accepted
    assert len(_referenced(planet) - before) == len(seg.pieces)


# ---------------------------------------------------------------- reconciliation


async def _wait_sweep(node: NodeService, created_at: float) -> None:
    retainer = node.retainer
    for _ in range(200):
        if retainer.last is not None and retainer.last.created_at >= created_at:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the node did not apply its retain filter")


def _swept(node: NodeService) -> RetainReport:
    """The node's last sweep, there once :func:`_wait_sweep` returned."""
    last = node.retainer.last
    assert last is not None
    return last


def test_reconciliation_removes_pieces_recorded_nowhere(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="gc-retain")
    s3.put_object(Bucket="gc-retain", Key="kept", Body=random_bytes(DATA, 7))
    coord = planet.planet.coordinator
    assert coord is not None
    begun = planet.run(_begin(planet, "gc-retain", "never-committed"))
    seg = planet.run(_store_placement(planet, begun.placement, DATA, coord.config.block_size))
    orphans = {(p.node_id, derive_piece_id(seg.root_piece_id, p.piece_num)) for p in seg.pieces}
    assert _on_disk(planet, orphans) == orphans
    referenced = _referenced(planet)
    assert not orphans & referenced
    rec = coord.durability.reconciler
    grace, clock = rec.grace, rec.clock
    nodes = {n.node_id: n for n in planet.planet.nodes}

    async def round_(grace: float) -> float:
        rec.grace = grace
        now = time.time()
        rec.clock = lambda: now
        stats = await rec.run_once()
        assert stats.nodes_sent == len(nodes) and stats.nodes_failed == 0
        await asyncio.gather(*(_wait_sweep(n, now) for n in nodes.values()))
        return now

    try:
        # Younger than the grace (an upload in flight): kept.
        planet.run(round_(3600.0))
        assert _on_disk(planet, orphans) == orphans
        # young orphans were seen and spared (a few may instead sit in the filter's ~1%
        # of false positives, which spares them as well)
        assert sum(_swept(n).kept_young for n in nodes.values()) >= 1
        # Past the grace: removed; everything referenced stays. A Bloom filter keeps ~1%
        # of what it should drop, and each round draws a fresh seed, so a few rounds
        # remove every orphan (one surviving four rounds: ~1e-8).
        removed = 0
        for _ in range(4):
            time.sleep(0.05)
            planet.run(round_(0.0))
            removed += sum(_swept(n).removed for n in nodes.values())
            assert _on_disk(planet, referenced) == referenced
            if not _on_disk(planet, orphans):
                break
        assert _on_disk(planet, orphans) == set()
        assert removed >= len(orphans)
        assert s3.get_object(Bucket="gc-retain", Key="kept")["Body"].read() == random_bytes(DATA, 7)
    finally:
        rec.grace, rec.clock = grace, clock


def test_retain_filter_from_an_untrusted_key_is_refused(planet: PlanetThread) -> None:
    import aiohttp

    node = planet.planet.nodes[1]
    stranger = Identity.generate()
    f = RetainFilter(
        node_id=node.node_id,
        created_at=time.time(),
        stored_before=time.time(),
        piece_count=0,
        num_bits=64,
        hashes=1,
        seed=b"\0" * 32,
        bits=b"\0" * 8,
    )
    body = msgspec.msgpack.encode(f)
    order = RetainOrder(
        node_id=node.node_id,
        created_at=f.created_at,
        size=len(body),
        digest=blake3.blake3(body).digest(),
    )
    count = node.store.piece_count

    async def post() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{node.address}{RETAIN_PATH}",
                data=body,
                headers={ORDER_HEADER: encode_header(sign(stranger, order))},
            ) as resp,
        ):
            return resp.status, await resp.text()

    status, text = planet.run(post())
    assert status == 403 and "untrusted key" in text
    assert node.retainer.pending is None and node.store.piece_count == count
