"""Low-carbon placement on a live network: a bucket tagged ``skymesh:placement=low-carbon``
puts its pieces on the nodes of low carbon intensity, inside its residency and the
region spread; an untagged bucket places as before. Each node declares its own
energy profile at join, as the coordinator's node list shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.testing.planet import DEFAULT_REGIONS, Planet, PlanetConfig, PlanetThread
from tests.planet._durability import coordinator, piece_rows

GREEN: dict[str, Any] = {"pue": 1.1, "grid_gco2_kwh": 30.0}
DIRTY: dict[str, Any] = {"pue": 1.6, "grid_gco2_kwh": 700.0}
OBJECTS = 12


@pytest.fixture
def planet(tmp_path: Path) -> Iterator[PlanetThread]:
    """12 nodes over three regions, each its own operator (so operator balancing never
    forces a choice); the first two of each region green. Four pieces a segment (2 of
    4), so the placement has room to choose."""
    config = PlanetConfig(node_count=0, coordinator_overrides={"scheme": "2/3/4/4"})
    thread = PlanetThread(Planet(tmp_path, config)).start()
    try:
        for i in range(12):
            profile = GREEN if i < 6 else DIRTY
            region = DEFAULT_REGIONS[i % 3]
            thread.run(thread.planet.add_node(region, operator=f"op-{i}", **profile))
        thread.run(thread.planet.wait_online(12))
        yield thread
    finally:
        thread.stop()


def _green_share(planet: PlanetThread, bucket: str) -> tuple[float, Counter[str]]:
    """Share of ``bucket``'s pieces on green nodes, and its pieces by region; asserts
    that no segment has more than 2 of its 4 pieces in one region (losing a region
    leaves k = 2), or is outside one region when the bucket is kept in one."""
    c = coordinator(planet)
    select = sa.select(objects.c.stream_id).where(objects.c.bucket == bucket)
    streams = set(planet.run(c.db.read(lambda conn: list(conn.execute(select).scalars()))))
    node = {n.node_id: n.config for n in planet.planet.nodes}
    rows = [r for r in piece_rows(planet) if r.stream_id in streams]
    assert len(rows) == 4 * OBJECTS
    per_segment = Counter((r.stream_id, node[r.node_id].region) for r in rows)
    regions = {region for _, region in per_segment}
    assert len(regions) == 1 or max(per_segment.values()) <= 2, per_segment
    green = sum(1 for r in rows if node[r.node_id].grid_gco2_kwh == GREEN["grid_gco2_kwh"])
    return green / len(rows), Counter(node[r.node_id].region for r in rows)


def test_low_carbon_buckets_prefer_green_nodes_within_the_constraints(
    planet: PlanetThread,
) -> None:
    s3 = planet.boto3()
    listed = {
        n.node_id: n for n in planet.run(coordinator(planet).overlay.registry.node_list()).nodes
    }
    for n in planet.planet.nodes:  # declared at join, kept with the node
        assert (listed[n.node_id].pue, listed[n.node_id].grid_gco2_kwh) == (
            n.config.pue,
            n.config.grid_gco2_kwh,
        )
    tag = {"TagSet": [{"Key": "skymesh:placement", "Value": "low-carbon"}]}
    s3.create_bucket(Bucket="plain")
    s3.create_bucket(Bucket="green")
    s3.put_bucket_tagging(Bucket="green", Tagging=tag)
    s3.create_bucket(Bucket="green-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west"})
    s3.put_bucket_tagging(Bucket="green-eu", Tagging=tag)
    for i in range(OBJECTS):
        for bucket in ("plain", "green", "green-eu"):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=bytes([i]) * 10_000)

    green, regions = _green_share(planet, "green")
    plain, plain_regions = _green_share(planet, "plain")
    assert green >= 0.85, green
    assert plain <= 0.75, plain
    assert set(regions) == set(plain_regions) == set(DEFAULT_REGIONS)
    # residency wins: the eu-west bucket's 4 pieces need all 4 eu-west nodes, dirty ones too
    share, where = _green_share(planet, "green-eu")
    assert set(where) == {"eu-west"} and share == 0.5
