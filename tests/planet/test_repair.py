"""Repair: segments that lost pieces are rebuilt elsewhere, without resurrecting old data."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from skymesh.coordinator.durability.repair.worker import RepairStats
from skymesh.testing.planet import PlanetThread
from tests.conftest import ON_BOTH_ENGINES, S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows

pytestmark = ON_BOTH_ENGINES


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _repair_all(planet: PlanetThread) -> list[RepairStats]:
    worker = coordinator(planet).durability.repair_worker
    done = []
    while (stats := planet.run(worker.repair_next())) is not None:
        done.append(stats)
        assert len(done) < 100
    return done


@pytest.fixture
def planet(own_planet: PlanetThread) -> PlanetThread:
    """Each test here repairs the damage it is given: a planet per test."""
    return own_planet


@pytest.fixture
def s3(planet: PlanetThread) -> S3Client:
    return planet.boto3()


@pytest.fixture
def stopped(planet: PlanetThread, s3: S3Client) -> dict[str, bytes]:
    """Objects stored on 10 of 12 nodes, 3 more nodes added, then 4 original nodes stopped."""
    pause_durability_loops(planet)
    s3.create_bucket(Bucket="repaired")
    objects = {
        "big": random_bytes(5 * 1024 * 1024 + 123, seed=21),
        "small": random_bytes(300_000, seed=22),
        "doomed": random_bytes(200_000, seed=23),
    }
    for key, data in objects.items():
        s3.put_object(Bucket="repaired", Key=key, Body=data)
    p = planet.planet
    for region in p.config.regions:
        planet.run(p.add_node(region))
    planet.run(p.wait_online(len(p.nodes)))
    # scheme 6/8/10/10 on 12 nodes: any 4 stopped hold at least 2 pieces of every
    # segment (each misses only 2 nodes), which puts it at 8 = repair or under
    victims = p.nodes[:4]
    for node in victims:
        planet.run(p.stop_node(node))
    planet.run(p.wait_offline(victims))
    return objects


def test_checker_queues_every_damaged_segment(
    planet: PlanetThread, stopped: dict[str, bytes]
) -> None:
    report = planet.run(coordinator(planet).durability.repair_checker.step())
    assert report.segments == report.queued >= 3
    assert report.lowest_healthy is not None and 6 <= report.lowest_healthy <= 8


def test_overwritten_object_is_not_resurrected(
    planet: PlanetThread, s3: S3Client, stopped: dict[str, bytes]
) -> None:
    """An overwrite between the worker's read and its swap: new pieces go to garbage."""
    c = coordinator(planet)
    worker = c.durability.repair_worker
    stream = planet.run(_stream_of(planet, "repaired", "doomed"))
    key = next((r.stream_id, r.part, r.idx) for r in piece_rows(planet) if r.stream_id == stream)
    fresh = b"new content " * 300  # inline: the overwrite needs no node, so no write
    p = planet.planet

    async def overwrite_while_uploading() -> RepairStats:
        gate = p.hold_writes()
        try:
            repair = asyncio.create_task(worker.repair(key))
            await asyncio.wait_for(gate.arrived.wait(), 60)  # rebuilt pieces reach a node
            async with p.client() as client:
                await client.put_object("repaired", "doomed", _one(fresh), size=len(fresh))
        finally:
            gate.open()
        return await repair

    stats = planet.run(overwrite_while_uploading())
    assert stats.outcome == "stale" and 2 <= stats.rebuilt <= 4
    assert s3.get_object(Bucket="repaired", Key="doomed")["Body"].read() == fresh
    assert stream not in {r.stream_id for r in piece_rows(planet)}
    garbage = planet.run(_garbage_for(planet, stats.new_nodes))
    assert garbage >= stats.rebuilt


async def _garbage_for(planet: PlanetThread, node_ids: list[str]) -> int:
    import sqlalchemy as sa

    from skymesh.coordinator.db.schema import garbage_pieces

    c = coordinator(planet)
    q = sa.select(sa.func.count()).where(garbage_pieces.c.node_id.in_(node_ids))
    return int(await c.db.read(lambda conn: conn.execute(q).scalar_one()))


async def _stream_of(planet: PlanetThread, bucket: str, key: str) -> str:
    import sqlalchemy as sa

    from skymesh.coordinator.db.schema import objects

    c = coordinator(planet)
    return await c.db.read(
        lambda conn: conn.execute(
            sa.select(objects.c.stream_id).where(objects.c.bucket == bucket, objects.c.key == key)
        ).scalar_one()
    )


def test_repair_restores_every_segment(
    planet: PlanetThread, s3: S3Client, stopped: dict[str, bytes]
) -> None:
    c = coordinator(planet)
    planet.run(c.durability.repair_checker.step())
    done = _repair_all(planet)
    assert done and all(s.outcome == "repaired" for s in done), done
    assert all(s.bytes_downloaded > 0 and s.bytes_uploaded > 0 for s in done)
    assert c.durability.repair_worker.totals.pieces_rebuilt >= 2 * len(done)
    down = {n.node_id for n in planet.planet.nodes[:4]}
    per_segment = Counter((r.stream_id, r.part, r.idx) for r in piece_rows(planet))
    region = {n.node_id: n.config.region for n in planet.planet.nodes}
    per_region: Counter[tuple[str, int, int, str]] = Counter()
    for r in piece_rows(planet):
        assert r.node_id not in down
        assert per_segment[(r.stream_id, r.part, r.idx)] == r.optimal
        per_region[(r.stream_id, r.part, r.idx, region[r.node_id])] += 1
    # still spread: losing any one region leaves k pieces
    assert max(per_region.values()) <= r.optimal - r.k
    report = planet.run(c.durability.repair_checker.step())
    assert report.queued == 0
    for key, data in stopped.items():
        assert s3.get_object(Bucket="repaired", Key=key)["Body"].read() == data
