"""A hung node (connections accepted, never answered, still listed online) stalls nothing.

Before, one such node held an upload for the client's 60 s read timeout (no long
tail to cut it where ``optimal == total``) and a repair for the coordinator's 60 s
node RPC timeout. The network here has ten large nodes and two small ones that
only take small pieces: a large object's placement (6/8/10/10 on twelve online
nodes) then has to use all ten large ones, the hung one among them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from skymesh.coordinator.db.schema import segments
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows

SMALL_NODE = 256 * 1024  # holds the repair test's pieces, not the upload test's


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    thread = PlanetThread(
        Planet(tmp_path_factory.mktemp("planet"), PlanetConfig(node_count=10))
    ).start()
    try:
        p = thread.planet
        for region in p.config.regions[:2]:
            thread.run(p.add_node(region, capacity=SMALL_NODE))
        thread.run(p.wait_online(len(p.nodes)))
        pause_durability_loops(thread)
        yield thread
    finally:
        thread.stop()


def test_upload_with_a_hung_target_retries_elsewhere(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="hung-upload")
    hung = planet.planet.nodes[0]  # a large node: every large object's placement holds it
    data = random_bytes(3 * 1024 * 1024 + 5, seed=71)
    before = {(r.stream_id, r.part, r.idx) for r in piece_rows(planet)}
    planet.run(planet.planet.hang(hung))
    try:
        started = time.monotonic()
        s3.put_object(Bucket="hung-upload", Key="obj", Body=data)
        elapsed = time.monotonic() - started
    finally:
        planet.run(planet.planet.heal(hung))
    print(f"upload with one hung target: {elapsed:.1f} s")
    assert elapsed < 15  # the stall timeout (5 s) and a retry, not the 60 s read timeout
    rows = [r for r in piece_rows(planet) if (r.stream_id, r.part, r.idx) not in before]
    assert rows and hung.node_id not in {r.node_id for r in rows}
    assert s3.get_object(Bucket="hung-upload", Key="obj")["Body"].read() == data


def _piece_size(planet: PlanetThread, key: tuple[str, int, int]) -> int:
    q = sa.select(segments.c.piece_size).where(
        segments.c.stream_id == key[0], segments.c.part == key[1], segments.c.idx == key[2]
    )
    size: int = planet.run(coordinator(planet).db.read(lambda conn: conn.execute(q).scalar_one()))
    return size


@pytest.mark.parametrize(("hung_count", "limit"), [(1, 5.0), (3, 12.0)])
def test_repair_with_hung_sources_finishes(
    planet: PlanetThread, s3: S3Client, hung_count: int, limit: float
) -> None:
    """One hung source is covered by the two extra ones at once; three wait out the stall."""
    p = planet.planet
    c = coordinator(planet)
    bucket = f"hung-repair-{hung_count}"
    s3.create_bucket(Bucket=bucket)
    before = {(r.stream_id, r.part, r.idx) for r in piece_rows(planet)}
    data = random_bytes(60_000, seed=72 + hung_count)
    s3.put_object(Bucket=bucket, Key="obj", Body=data)
    rows = sorted(
        (r for r in piece_rows(planet) if (r.stream_id, r.part, r.idx) not in before),
        key=lambda r: r.piece_num,
    )
    assert len(rows) == 10 and rows[0].k == 6
    key = (rows[0].stream_id, rows[0].part, rows[0].idx)
    by_id = {n.node_id: n for n in p.nodes}
    # Nine of ten pieces stay, above the repair threshold (8): repair then rebuilds only
    # onto a node that keeps the regions spread. Lose a piece from a region that has a
    # spare node, so that its copy can go back there; hang the holders of the first
    # remaining pieces, which are asked first.
    records = planet.run(c.overlay.registry.lookup({n.node_id for n in p.nodes}))
    holders = {r.node_id for r in rows}
    spare_regions = {
        n.region
        for n in records.values()
        if n.node_id not in holders and c.overlay.registry.is_online(n)
    }
    lost_row = max(
        (r for r in rows if records[r.node_id].region in spare_regions), key=lambda r: r.piece_num
    )
    lost = by_id[lost_row.node_id]
    planet.run(p.stop_node(lost))
    try:
        planet.run(p.wait_offline([lost]))
        sources = [r for r in rows if r is not lost_row]
        hung = [by_id[r.node_id] for r in sources[:hung_count]]
        for node in hung:
            planet.run(p.hang(node))
        try:
            started = time.monotonic()
            stats = planet.run(c.durability.repair_worker.repair(key))
            elapsed = time.monotonic() - started
        finally:
            for node in hung:
                planet.run(p.heal(node))
        print(f"repair with {hung_count} hung source(s): {elapsed:.1f} s")
        assert stats.outcome == "repaired" and stats.rebuilt == 1
        assert elapsed < limit  # not the 60 s node RPC timeout
        # Metered: the whole pieces received, k used and at most the extras besides.
        piece_size = _piece_size(planet, key)
        assert stats.bytes_downloaded % piece_size == 0
        assert 6 <= stats.bytes_downloaded // piece_size <= 8
        holders = {r.node_id for r in piece_rows(planet) if (r.stream_id, r.part, r.idx) == key}
        assert lost.node_id not in holders and len(holders) == 10
        assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == data
    finally:
        planet.run(p.start_node(lost))


def _piece_gets(planet: PlanetThread) -> int:
    return sum(
        n
        for node in planet.planet.nodes
        for key, n in node.counters.requests.items()
        if key.startswith("GET /v1/pieces/{piece_id}")
    )


def test_healthy_read_asks_k_nodes_and_a_hung_one_is_hedged(
    planet: PlanetThread, s3: S3Client
) -> None:
    """Reads ask k nodes per window, and the extra ones only for a straggler."""
    s3.create_bucket(Bucket="hedged-read")
    before = {(r.stream_id, r.part, r.idx) for r in piece_rows(planet)}
    data = random_bytes(60_000, seed=81)  # one stripe: one window
    s3.put_object(Bucket="hedged-read", Key="obj", Body=data)
    holders = {
        r.piece_num: r.node_id
        for r in piece_rows(planet)
        if (r.stream_id, r.part, r.idx) not in before
    }
    assert len(holders) >= 8  # k = 6, and the extras a hedged read may ask
    asked = []
    for _ in range(5):
        gets = _piece_gets(planet)
        assert s3.get_object(Bucket="hedged-read", Key="obj")["Body"].read() == data
        asked.append(_piece_gets(planet) - gets)
    # k, not k + extra up front (a loaded machine may hedge a read now and then)
    assert min(asked) == 6, asked

    # The node holding the first data piece (asked first) hangs: the read still ends quickly.
    by_id = {n.node_id: n for n in planet.planet.nodes}
    hung = by_id[holders[min(holders)]]
    planet.run(planet.planet.hang(hung))
    try:
        started = time.monotonic()
        got = s3.get_object(Bucket="hedged-read", Key="obj")["Body"].read()
        elapsed = time.monotonic() - started
    finally:
        planet.run(planet.planet.heal(hung))
    print(f"read with a hung data piece: {elapsed:.2f} s")
    assert got == data
    assert elapsed < 3  # hedged once the others answered, not the 60 s read timeout
