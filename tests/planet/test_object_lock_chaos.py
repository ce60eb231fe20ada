"""A COMPLIANCE-retained object survives every API and every role that could remove it.

Through S3 (delete by id, DeleteObjects, shortening, overwrite, DeleteBucket, the
governance bypass), through the coordinator's own API with the project's key (no
gateway in the way) and with the administrator's token, through the loss of nodes
holding its pieces (repair), a node drained by its operator, and the garbage
collector: afterwards the version reads back byte-exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.errors import SkymeshError
from skymesh.rpc import RpcClient
from skymesh.testing.planet import Planet, PlanetThread
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    BucketRequest,
    DeleteObjectsItem,
    DeleteObjectsRequest,
    ObjectLock,
    ObjectRequest,
    PutObjectLockRequest,
)
from tests.conftest import planet_config, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows

BUCKET, KEY = "vault", "ledger"


@pytest.fixture(scope="module")
def planet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlanetThread]:
    config = planet_config(request, "sqlite", coordinator_overrides={"gc_grace": 0.0})
    thread = PlanetThread(Planet(tmp_path_factory.mktemp("lock"), config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return str(e.value.response["Error"]["Code"])


async def _refused(call: Any) -> str:
    with pytest.raises(SkymeshError) as e:
        await call
    return e.value.code


async def _through_the_coordinator(planet: Planet, version: str) -> None:
    """The coordinator's HTTP API, called directly: the project's key, then the admin's."""
    assert planet.credential is not None
    later = (datetime.now(UTC) + timedelta(hours=1)).timestamp()
    async with aiohttp.ClientSession() as s:
        url = planet.coordinator_urls
        project = RpcClient(url, s, {"Authorization": f"Bearer {planet.credential.api_key}"})
        admin = RpcClient(url, s, {"Authorization": f"Bearer {planet.admin_token}"})
        by_id = ObjectRequest(bucket=BUCKET, key=KEY, version_id=version, bypass_governance=True)
        assert await _refused(project.send(routes.DELETE_OBJECT, by_id)) == "AccessDenied"
        batch = DeleteObjectsRequest(
            bucket=BUCKET,
            objects=[DeleteObjectsItem(key=KEY, version_id=version)],
            bypass_governance=True,
        )
        answer = await project.send(routes.DELETE_OBJECTS, batch)
        assert answer.results[0].error_code == "AccessDenied"
        for retention in (ObjectLock(), ObjectLock(mode="GOVERNANCE", retain_until=later)):
            shorten = PutObjectLockRequest(
                bucket=BUCKET,
                key=KEY,
                version_id=version,
                retention=retention,
                bypass_governance=True,
            )
            assert await _refused(project.send(routes.PUT_OBJECT_LOCK, shorten)) == "AccessDenied"
        delete_bucket = project.send(routes.DELETE_BUCKET, BucketRequest(name=BUCKET))
        assert await _refused(delete_bucket) == "BucketNotEmpty"
        # the administrator holds no route that removes objects, buckets or projects,
        # and the project's routes do not take the admin token
        assert await _refused(admin.send(routes.DELETE_OBJECT, by_id)) in {
            "Unauthorized",
            "Forbidden",
        }
    for route in routes.COORDINATOR_ROUTES:
        if route.caller in (routes.Caller.ADMIN, routes.Caller.PROJECT_OR_ADMIN):
            assert not route.path.startswith(("/v1/objects", "/v1/buckets", "/v1/uploads"))


def test_retained_object_survives_everything(planet: PlanetThread, tmp_path: Path) -> None:
    pause_durability_loops(planet)
    p = planet.planet
    s3 = planet.boto3()
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    data = random_bytes(300_000, seed=15)
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    version = s3.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=data,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]

    # S3, every way
    for bypass in (False, True):
        assert (
            _code(
                lambda b=bypass: s3.delete_object(
                    Bucket=BUCKET, Key=KEY, VersionId=version, BypassGovernanceRetention=b
                )
            )
            == "AccessDenied"
        )
    result = s3.delete_objects(
        Bucket=BUCKET,
        Delete={"Objects": [{"Key": KEY, "VersionId": version}]},
        BypassGovernanceRetention=True,
    )
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]
    sooner = {"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)}
    assert (
        _code(
            lambda: s3.put_object_retention(
                Bucket=BUCKET,
                Key=KEY,
                VersionId=version,
                Retention=sooner,
                BypassGovernanceRetention=True,
            )
        )
        == "AccessDenied"
    )
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"overwritten")  # a new version on top
    s3.delete_object(Bucket=BUCKET, Key=KEY)  # and a delete marker: both allowed
    assert _code(lambda: s3.delete_bucket(Bucket=BUCKET)) == "BucketNotEmpty"

    planet.run(_through_the_coordinator(p, version))

    # its operator drains a node holding a piece (the CLI): the piece moves first
    c = coordinator(planet)
    stream = {r.stream_id for r in piece_rows(planet)}
    assert len(stream) == 1  # the overwrite was inline: only the locked version has pieces
    for region in p.config.regions[:2]:  # room for the drain and for repair
        planet.run(p.add_node(region))
    planet.run(p.wait_online(len(p.nodes)))
    holders = {r.node_id for r in piece_rows(planet)}
    index = next(i for i, n in enumerate(p.nodes) if n.node_id in holders)
    node = p.nodes[index]
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\ndata_dir = "{node.config.data_dir}"\n'
        f'coordinator_url = "{node.config.coordinator_url}"\n'
    )
    drained = CliRunner().invoke(app, ["node", "drain", "--config", str(cfg)])
    assert drained.exit_code == 0, drained.output
    planet.run(c.durability.repair_checker.step())
    while planet.run(c.durability.repair_worker.repair_next()) is not None:
        pass
    assert node.node_id not in {r.node_id for r in piece_rows(planet)}

    # then nodes holding its pieces are lost: repair rebuilds them elsewhere
    rows = piece_rows(planet)
    holders = {r.node_id for r in rows}
    lost = [n for n in p.nodes if n.node_id in holders][: len(holders) - rows[0].repair]
    for node in lost:
        planet.run(p.stop_node(node))
    planet.run(p.wait_offline(lost))
    assert planet.run(c.durability.repair_checker.step()).queued == 1
    repaired = planet.run(c.durability.repair_worker.repair_next())
    assert repaired is not None and repaired.outcome == "repaired"

    # the collector frees what repair and drain replaced, never the version's own pieces
    planet.run(c.durability.gc.run_once())
    rows = piece_rows(planet)
    assert {r.stream_id for r in rows} == stream and len(rows) >= rows[0].optimal
    got = s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=version)
    assert got["ObjectLockMode"] == "COMPLIANCE" and got["Body"].read() == data
