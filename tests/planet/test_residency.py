"""Data residency through boto3: a bucket's LocationConstraint keeps its pieces there.

Four regions, two of them in the EU; three nodes each. Upload placement, a
drain, repair after a node is lost, and refusal when the region runs out of
nodes, all on a live network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from skymesh.coordinator.db.schema import objects
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows

REGIONS = ("eu-west", "us-east", "eu-central", "ap-south")


@pytest.fixture
def planet(tmp_path: Path) -> Iterator[PlanetThread]:
    """A planet per test: each drains or stops nodes of a region the other places in."""
    thread = PlanetThread(Planet(tmp_path, PlanetConfig(node_count=12, regions=REGIONS))).start()
    pause_durability_loops(thread)
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def s3(planet: PlanetThread) -> S3Client:
    return planet.boto3()


def _regions_of(planet: PlanetThread, bucket: str) -> dict[str, set[str]]:
    """{node_id: regions} of every piece of ``bucket``'s objects, as {region: node ids}."""
    c = coordinator(planet)
    streams = set(
        planet.run(
            c.db.read(
                lambda conn: list(
                    conn.execute(
                        sa.select(objects.c.stream_id).where(objects.c.bucket == bucket)
                    ).scalars()
                )
            )
        )
    )
    region = {n.node_id: n.config.region for n in planet.planet.nodes}
    out: dict[str, set[str]] = {}
    for r in piece_rows(planet):
        if r.stream_id in streams:
            out.setdefault(region[r.node_id], set()).add(r.node_id)
    return out


def _location(s3: S3Client, bucket: str) -> str | None:
    location: str | None = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return location


def test_drain_moves_pieces_inside_the_residency(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="in-ec", CreateBucketConfiguration={"LocationConstraint": "eu-central"})
    body = random_bytes(200_000, seed=5)
    s3.put_object(Bucket="in-ec", Key="obj", Body=body)
    before = _regions_of(planet, "in-ec")
    assert set(before) == {"eu-central"} and len(before["eu-central"]) == 2
    c = coordinator(planet)
    leaving = sorted(before["eu-central"])[0]
    planet.run(c.overlay.reputation.request_exit(leaving))
    report = planet.run(c.durability.repair_checker.step())
    assert (report.queued, report.misplaced) == (1, 1)
    stats = planet.run(c.durability.repair_worker.repair_next())
    assert stats is not None and stats.outcome == "repaired" and stats.rebuilt == 1
    after = _regions_of(planet, "in-ec")
    # the one eu-central node that held nothing took it; nothing went to another region
    assert set(after) == {"eu-central"} and len(after["eu-central"]) == 2
    assert leaving not in after["eu-central"]
    assert planet.run(c.durability.repair_checker.step()).drained == 1
    assert s3.get_object(Bucket="in-ec", Key="obj")["Body"].read() == body


def test_constraints_keep_pieces_inside_through_repair(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="in-west", CreateBucketConfiguration={"LocationConstraint": "eu-west"})
    s3.create_bucket(Bucket="in-eu", CreateBucketConfiguration={"LocationConstraint": "eu"})
    s3.create_bucket(Bucket="anywhere")
    assert _location(s3, "in-west") == "eu-west"
    assert _location(s3, "in-eu") == "eu"
    assert _location(s3, "anywhere") in (None, "")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="on-mars", CreateBucketConfiguration={"LocationConstraint": "mars"})
    err = e.value.response
    assert err["Error"]["Code"] == "InvalidLocationConstraint"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "eu-central" in err["Error"]["Message"]  # says what would work

    data = {b: random_bytes(300_000, seed=i) for i, b in enumerate(["in-west", "in-eu"])}
    for bucket, body in data.items():
        s3.put_object(Bucket=bucket, Key="obj", Body=body)
    west = _regions_of(planet, "in-west")
    assert set(west) == {"eu-west"}  # 3 nodes there: scheme 1/1/2/2, one spare
    assert len(west["eu-west"]) == 2
    assert set(_regions_of(planet, "in-eu")) == {"eu-west", "eu-central"}

    # Lose an eu-west node holding a piece of each: repair rebuilds inside the residency.
    c = coordinator(planet)
    p = planet.planet
    victim = next(n for n in p.nodes if n.node_id in west["eu-west"])
    planet.run(p.stop_node(victim))
    planet.run(p.wait_offline([victim]))
    report = planet.run(c.durability.repair_checker.step())
    assert report.queued >= 1
    while (stats := planet.run(c.durability.repair_worker.repair_next())) is not None:
        assert stats.outcome == "repaired", stats
    after = _regions_of(planet, "in-west")
    assert set(after) == {"eu-west"} and len(after["eu-west"]) == 2
    assert victim.node_id not in after["eu-west"]
    assert set(_regions_of(planet, "in-eu")) <= {"eu-west", "eu-central"}
    for bucket, body in data.items():
        assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == body

    # One eu-west node left: uploads to that bucket are refused, never placed outside;
    # the eu group still has four nodes.
    other = next(n for n in p.nodes if n.config.region == "eu-west" and n.node_id != victim.node_id)
    planet.run(p.stop_node(other))
    planet.run(p.wait_offline([other]))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="in-west", Key="later", Body=random_bytes(100_000, seed=9))
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "eu-west" in err["Error"]["Message"]
    s3.put_object(Bucket="in-eu", Key="later", Body=random_bytes(100_000, seed=9))
    assert set(_regions_of(planet, "in-eu")) <= {"eu-west", "eu-central"}
