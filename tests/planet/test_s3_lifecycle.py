"""Bucket lifecycle end to end: the configuration through boto3, then the coordinator's
``lifecycle-rules`` loop expiring what S3 would, and garbage collection freeing the pieces.

The planet's lifecycle "day" is one second (``lifecycle_day_seconds``); the loop is
paused and driven with ``run_once`` once a test's objects are past their day boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.apply_lifecycle import LifecycleRun
from skymesh.lifecycle_rules import after_days
from skymesh.testing.planet import Planet, PlanetThread
from tests.conftest import S3Client, planet_config, random_bytes
from tests.planet.test_gc import _on_disk, _queued, _referenced

DAY = 1.0  # the planet's lifecycle_day_seconds
DATA = 40 * 1024  # over the inline threshold: stored in pieces


@pytest.fixture(scope="module")
def planet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, planet_engine: str
) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("lifecycle")
    overrides = {
        "gc_grace": 0.0,
        "gc_interval": 3600.0,
        "retain_interval": 0.0,
        "lifecycle_day_seconds": DAY,
    }
    config = planet_config(request, planet_engine, node_count=6, coordinator_overrides=overrides)
    thread = PlanetThread(Planet(root, config)).start()
    coord = thread.planet.coordinator
    assert coord is not None

    async def pause() -> None:
        coord.loops["lifecycle-rules"].pause()

    thread.run(pause())
    try:
        yield thread
    finally:
        thread.stop()


def _code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return str(e.value.response["Error"]["Code"])


def _run(planet: PlanetThread) -> LifecycleRun:
    """One run of the loop, once every object made so far is a day boundary past its Days=1."""
    time.sleep(max(0.0, after_days(time.time(), 1, DAY) - time.time()) + 0.05)
    coord = planet.planet.coordinator
    assert coord is not None
    planet.run(coord.loops["lifecycle-rules"].run_once())
    result = coord.metainfo.lifecycle_rules.last
    assert result is not None
    return result


def _collect(planet: PlanetThread) -> None:
    coord = planet.planet.coordinator
    assert coord is not None
    planet.run(coord.durability.gc.run_once())


def _put_rules(s3: S3Client, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)}
    )


def test_configuration_round_trip_and_errors(s3: S3Client) -> None:
    s3.create_bucket(Bucket="lc-config")
    assert (
        _code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-config"))
        == "NoSuchLifecycleConfiguration"
    )
    rules = [
        {
            "ID": "tmp",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "kind", "Value": "tmp"}},
            "Expiration": {"Days": 3},
        },
        {
            "Status": "Disabled",
            "Filter": {},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
    _put_rules(s3, "lc-config", *rules)
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-config")["Rules"]
    assert got[0] == rules[0]
    assert got[1].pop("ID") and got[1] == rules[1]
    bad_days = {"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}
    assert _code(lambda: _put_rules(s3, "lc-config", bad_days)) == "InvalidArgument"
    twice = {"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}
    assert _code(lambda: _put_rules(s3, "lc-config", twice, twice)) == "InvalidArgument"
    transition = {
        "Status": "Enabled",
        "Filter": {},
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
    }
    assert _code(lambda: _put_rules(s3, "lc-config", transition)) == "InvalidStorageClass"
    assert s3.get_bucket_lifecycle_configuration(Bucket="lc-config")["Rules"][0]["ID"] == "tmp"
    s3.delete_bucket_lifecycle(Bucket="lc-config")
    assert (
        _code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-config"))
        == "NoSuchLifecycleConfiguration"
    )


def test_unversioned_expiry_deletes_and_gc_frees_the_pieces(
    planet: PlanetThread, s3: S3Client
) -> None:
    s3.create_bucket(Bucket="lc-plain")
    _put_rules(
        s3,
        "lc-plain",
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
        {
            "ID": "later",
            "Status": "Enabled",
            "Filter": {"Prefix": "keep/"},
            "Expiration": {"Days": 30},
        },
    )
    put = s3.put_object(Bucket="lc-plain", Key="tmp/a", Body=random_bytes(DATA, 1))
    assert 'rule-id="tmp"' in put["Expiration"]
    s3.put_object(Bucket="lc-plain", Key="keep/b", Body=random_bytes(DATA, 2))
    s3.put_object(Bucket="lc-plain", Key="other", Body=b"x")
    head = s3.head_object(Bucket="lc-plain", Key="keep/b")
    expiry = head["Expiration"]
    assert expiry.endswith('rule-id="later"'), expiry
    date = parsedate_to_datetime(expiry.split('"')[1]).timestamp()
    modified = head["LastModified"].timestamp()  # whole seconds: the creation is within 1 s
    assert date in (after_days(modified, 30, DAY), after_days(modified + 1, 30, DAY))
    assert "Expiration" not in s3.head_object(Bucket="lc-plain", Key="other")

    before = _referenced(planet)
    result = _run(planet)
    assert result.expired >= 1
    assert _code(lambda: s3.head_object(Bucket="lc-plain", Key="tmp/a")) == "404"
    assert s3.get_object(Bucket="lc-plain", Key="keep/b")["Body"].read() == random_bytes(DATA, 2)
    gone = before - _referenced(planet)
    assert gone and gone <= _queued(planet)
    _collect(planet)
    assert _on_disk(planet, gone) == set()
    assert _run(planet).expired == 0  # idempotent: nothing more is due


def test_versioned_expiry_markers_and_noncurrent_versions(
    s3: S3Client, planet: PlanetThread
) -> None:
    s3.create_bucket(Bucket="lc-ver")
    s3.put_bucket_versioning(Bucket="lc-ver", VersioningConfiguration={"Status": "Enabled"})
    _put_rules(
        s3,
        "lc-ver",
        {
            "ID": "v",
            "Status": "Enabled",
            "Filter": {"Prefix": "v/"},
            "Expiration": {"Days": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1},
        },
        {
            "ID": "m",
            "Status": "Enabled",
            "Filter": {"Prefix": "m/"},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    )
    ids = [
        s3.put_object(Bucket="lc-ver", Key="v/k", Body=random_bytes(DATA, i))["VersionId"]
        for i in range(3)
    ]
    lone = s3.put_object(Bucket="lc-ver", Key="m/x", Body=b"m")["VersionId"]
    s3.delete_object(Bucket="lc-ver", Key="m/x")  # a marker over a version: not expired
    s3.delete_object(Bucket="lc-ver", Key="m/y")  # a marker alone: expired
    _run(planet)
    listing = s3.list_object_versions(Bucket="lc-ver")
    versions = [(v["Key"], v["VersionId"]) for v in listing.get("Versions", [])]
    markers = [(m["Key"], m["IsLatest"]) for m in listing.get("DeleteMarkers", [])]
    # v/k: the current version went behind a delete marker; of the noncurrent ones the
    # newest is kept (NewerNoncurrentVersions 1) and the oldest is gone
    assert [vid for key, vid in versions if key == "v/k"] == [ids[2], ids[1]]
    assert ("v/k", True) in markers
    # m/x keeps its marker (a version is under it); m/y's lone marker is gone
    assert ("m/x", True) in markers and not any(k == "m/y" for k, _ in markers)
    s3.delete_object(Bucket="lc-ver", Key="m/x", VersionId=lone)  # now m/x's marker is alone
    _run(planet)
    listing = s3.list_object_versions(Bucket="lc-ver", Prefix="m/")
    assert not listing.get("DeleteMarkers") and not listing.get("Versions")


def test_incomplete_upload_aborted_and_its_parts_freed(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="lc-mp")
    _put_rules(
        s3,
        "lc-mp",
        {
            "ID": "abort",
            "Status": "Enabled",
            "Filter": {"Prefix": "up/"},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    )
    created = s3.create_multipart_upload(Bucket="lc-mp", Key="up/big")
    up = created["UploadId"]
    assert created["AbortRuleId"] == "abort"
    started = time.time()  # the abort date: the first day boundary a day after creation
    assert started - 1 <= created["AbortDate"].timestamp() - DAY <= started + 1
    kept_upload = s3.create_multipart_upload(Bucket="lc-mp", Key="other")
    assert "AbortDate" not in kept_upload
    kept = kept_upload["UploadId"]
    s3.upload_part(
        Bucket="lc-mp", Key="up/big", UploadId=up, PartNumber=1, Body=random_bytes(DATA, 9)
    )
    before = _referenced(planet)
    assert _run(planet).uploads == 1
    uploads = s3.list_multipart_uploads(Bucket="lc-mp").get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [kept]
    gone = before - _referenced(planet)
    assert gone
    _collect(planet)
    assert _on_disk(planet, gone) == set()


def test_tag_filters_match_digests_that_follow_tag_changes(
    planet: PlanetThread, s3: S3Client
) -> None:
    s3.create_bucket(Bucket="lc-tags")
    _put_rules(
        s3,
        "lc-tags",
        {
            "ID": "tmp",
            "Status": "Enabled",
            "Filter": {"And": {"Tags": [{"Key": "kind", "Value": "tmp"}], "Prefix": "t/"}},
            "Expiration": {"Days": 1},
        },
    )
    s3.put_object(Bucket="lc-tags", Key="t/put", Body=b"a", Tagging="kind=tmp&x=1")
    s3.put_object(Bucket="lc-tags", Key="t/other", Body=b"b", Tagging="kind=keep")
    s3.put_object(Bucket="lc-tags", Key="t/retagged", Body=b"c", Tagging="kind=keep")
    s3.put_object(Bucket="lc-tags", Key="t/untagged", Body=b"d", Tagging="kind=tmp")
    mp = s3.create_multipart_upload(Bucket="lc-tags", Key="t/mp", Tagging="kind=tmp")["UploadId"]
    part = s3.upload_part(Bucket="lc-tags", Key="t/mp", UploadId=mp, PartNumber=1, Body=b"e")
    s3.complete_multipart_upload(
        Bucket="lc-tags",
        Key="t/mp",
        UploadId=mp,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    tagging = {"TagSet": [{"Key": "kind", "Value": "tmp"}]}
    s3.put_object_tagging(Bucket="lc-tags", Key="t/retagged", Tagging=tagging)
    s3.delete_object_tagging(Bucket="lc-tags", Key="t/untagged")
    assert 'rule-id="tmp"' in s3.head_object(Bucket="lc-tags", Key="t/put")["Expiration"]
    assert "Expiration" not in s3.head_object(Bucket="lc-tags", Key="t/other")
    # the coordinator holds digests, never the tags
    coord = planet.planet.coordinator
    assert coord is not None
    query = sa.select(objects.c.tag_digests).where(objects.c.bucket == "lc-tags")
    stored = planet.run(coord.db.read(lambda c: c.execute(query).scalars().all()))
    assert stored and not any("tmp" in (d or "") or "kind" in (d or "") for d in stored)
    _run(planet)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lc-tags").get("Contents", [])]
    assert keys == ["t/other", "t/untagged"]


def test_object_lock_refuses_lifecycle_and_the_run_goes_on(
    planet: PlanetThread, s3: S3Client, caplog: Any
) -> None:
    """A noncurrent version under COMPLIANCE retention is refused by the shared delete
    path: the run skips and logs it, and removes the rest of the batch."""
    s3.create_bucket(Bucket="lc-lock", ObjectLockEnabledForBucket=True)
    _put_rules(
        s3,
        "lc-lock",
        {"ID": "old", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    )  # fmt: skip
    until = datetime.now(UTC) + timedelta(days=1)
    first: dict[str, str] = {}
    for key in ("a", "locked", "z"):
        lock: dict[str, Any] = {}
        if key == "locked":
            lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        first[key] = s3.put_object(
            Bucket="lc-lock", Key=key, Body=b"v1", ChecksumAlgorithm="SHA256", **lock
        )["VersionId"]
        s3.put_object(Bucket="lc-lock", Key=key, Body=b"v2")  # v1 is noncurrent from now
    result = _run(planet)
    assert result.skipped == 1 and len(result.refused) == 1
    assert result.refused[0] == f"lc-lock/locked@{first['locked']}: AccessDenied"
    versions = s3.list_object_versions(Bucket="lc-lock")["Versions"]
    kept = {(v["Key"], v["VersionId"]) for v in versions if not v["IsLatest"]}
    assert kept == {("locked", first["locked"])}
    got = s3.get_object(Bucket="lc-lock", Key="locked", VersionId=first["locked"])
    assert got["Body"].read() == b"v1"
    assert "cannot drop-version lc-lock/locked" in caplog.text
