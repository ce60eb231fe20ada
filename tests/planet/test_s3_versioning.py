"""S3 versioning through boto3: bucket state, versions, delete markers, null versions.

Each behaviour, and its error cases, against the in-process network (real
coordinator, nodes and gateway).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from skymesh.coordinator.db.schema import garbage_pieces
from skymesh.testing.planet import PlanetThread
from tests.conftest import ON_BOTH_ENGINES, random_bytes

pytestmark = ON_BOTH_ENGINES

BIG = 10 * 1024  # over the inline threshold: stored in pieces


def _bucket(s3: Any, enable: bool = True) -> str:
    name = f"ver-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    if enable:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _error(fn: Any) -> tuple[str, int, dict[str, str]]:
    with pytest.raises(ClientError) as e:
        fn()
    meta = e.value.response["ResponseMetadata"]
    return e.value.response["Error"]["Code"], meta["HTTPStatusCode"], meta["HTTPHeaders"]


def _garbage(planet: PlanetThread) -> int:
    coord = planet.planet.coordinator
    assert coord is not None
    query = sa.select(sa.func.count()).select_from(garbage_pieces)
    return int(planet.run(coord.db.read(lambda c: c.execute(query).scalar_one())))


def _versions(s3: Any, bucket: str, **kw: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker), keys in order, newest first.

    boto3 splits versions and delete markers into two lists; S3's order within a key
    is newest first, which the (millisecond) LastModified restores.
    """
    resp = s3.list_object_versions(Bucket=bucket, **kw)
    rows = [(v, False) for v in resp.get("Versions", [])]
    rows += [(d, True) for d in resp.get("DeleteMarkers", [])]
    rows.sort(key=lambda r: (r[0]["Key"], -r[0]["LastModified"].timestamp()))
    return [(v["Key"], v["VersionId"], v["IsLatest"], marker) for v, marker in rows]


def test_bucket_versioning_states(s3: Any) -> None:
    bucket = _bucket(s3, enable=False)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    code, status, _ = _error(
        lambda: s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Sometimes"}
        )
    )
    assert (code, status) == ("MalformedXML", 400)
    code, _, _ = _error(lambda: s3.get_bucket_versioning(Bucket="ver-no-such-bucket"))
    assert code == "NoSuchBucket"


def test_versions_null_version_and_reads_by_id(planet: PlanetThread, s3: Any) -> None:
    bucket = _bucket(s3, enable=False)
    first = random_bytes(BIG, seed=1)
    put = s3.put_object(Bucket=bucket, Key="k", Body=first)
    assert "VersionId" not in put  # a never-versioned bucket shows no version ids
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="k")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    before = _garbage(planet)
    second = random_bytes(BIG, seed=2)
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=second)["VersionId"]
    assert v2 != "null"
    assert _garbage(planet) == before  # overwriting in a versioned bucket keeps the old pieces
    assert _versions(s3, bucket) == [("k", v2, True, False), ("k", "null", False, False)]
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == second and got["VersionId"] == v2
    old = s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert old["Body"].read() == first and old["VersionId"] == "null"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"] == BIG
    assert (
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2, Range="bytes=0-9")["Body"].read()
        == (second[:10])
    )
    # listings show only the latest version of a key
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == got["ETag"]
    # unknown and malformed version ids
    code, status, _ = _error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 32))
    assert (code, status) == ("NoSuchVersion", 404)
    code, status, _ = _error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId="bad!"))
    assert (code, status) == ("InvalidArgument", 400)
    code, status, _ = _error(lambda: s3.head_object(Bucket=bucket, Key="k", VersionId="0" * 32))
    assert status == 404


def test_delete_markers(planet: PlanetThread, s3: Any) -> None:
    bucket = _bucket(s3)
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=random_bytes(BIG, 3))["VersionId"]
    before = _garbage(planet)
    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    assert marker not in ("null", v1)
    assert _garbage(planet) == before  # a marker frees nothing
    code, status, headers = _error(lambda: s3.get_object(Bucket=bucket, Key="doc"))
    assert (code, status) == ("NoSuchKey", 404)
    assert headers["x-amz-delete-marker"] == "true"
    assert headers["x-amz-version-id"] == marker
    code, status, headers = _error(lambda: s3.head_object(Bucket=bucket, Key="doc"))
    assert status == 404 and headers["x-amz-delete-marker"] == "true"
    code, status, headers = _error(
        lambda: s3.get_object(Bucket=bucket, Key="doc", VersionId=marker)
    )
    assert (code, status) == ("MethodNotAllowed", 405)
    assert headers["x-amz-delete-marker"] == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "Contents" not in s3.list_objects(Bucket=bucket)
    assert _versions(s3, bucket) == [("doc", marker, True, True), ("doc", v1, False, False)]
    # the old version stays readable by id
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["ContentLength"] == BIG
    # conditional create succeeds over a delete marker
    s3.put_object(Bucket=bucket, Key="doc", Body=b"again", IfNoneMatch="*")
    code, status, _ = _error(
        lambda: s3.put_object(Bucket=bucket, Key="doc", Body=b"x", IfNoneMatch="*")
    )
    assert (code, status) == ("PreconditionFailed", 412)
    # removing the marker by id: it goes for good, and nothing becomes garbage
    gone = s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert gone["DeleteMarker"] is True and gone["VersionId"] == marker
    assert _garbage(planet) == before
    # deleting a version by id removes it for good and queues its pieces
    gone = s3.delete_object(Bucket=bucket, Key="doc", VersionId=v1)
    assert gone["VersionId"] == v1 and "DeleteMarker" not in gone
    assert _garbage(planet) > before
    assert [v[1] for v in _versions(s3, bucket)] == [
        s3.head_object(Bucket=bucket, Key="doc")["VersionId"]
    ]
    code, _, _ = _error(lambda: s3.get_object(Bucket=bucket, Key="doc", VersionId=v1))
    assert code == "NoSuchVersion"


def test_deleting_the_latest_version_makes_the_previous_one_current(s3: Any) -> None:
    bucket = _bucket(s3)
    v1 = s3.put_object(Bucket=bucket, Key="a", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="a", Body=b"two")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="a", VersionId=v2)
    got = s3.get_object(Bucket=bucket, Key="a")
    assert got["Body"].read() == b"one" and got["VersionId"] == v1
    assert _versions(s3, bucket) == [("a", v1, True, False)]


def test_suspended_writes_replace_the_null_version(planet: PlanetThread, s3: Any) -> None:
    bucket = _bucket(s3, enable=False)
    s3.put_object(Bucket=bucket, Key="s", Body=random_bytes(BIG, 4))  # null
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v2 = s3.put_object(Bucket=bucket, Key="s", Body=b"v2")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    before = _garbage(planet)
    put = s3.put_object(Bucket=bucket, Key="s", Body=b"v3")
    assert put["VersionId"] == "null"
    assert _garbage(planet) > before  # the old null version's pieces
    assert _versions(s3, bucket) == [("s", "null", True, False), ("s", v2, False, False)]
    assert s3.get_object(Bucket=bucket, Key="s", VersionId="null")["Body"].read() == b"v3"
    # a suspended delete writes a null delete marker, replacing the null version
    deleted = s3.delete_object(Bucket=bucket, Key="s")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert _versions(s3, bucket) == [("s", "null", True, True), ("s", v2, False, False)]


def test_list_object_versions_pages_prefixes_and_markers(s3: Any) -> None:
    bucket = _bucket(s3)
    expected: list[tuple[str, str]] = []
    for key in ("a", "b/1", "b/2", "c d", "é"):
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"] for _ in range(2)]
        expected += [(key, v) for v in reversed(ids)]
    everything = [(k, v) for k, v, _, _ in _versions(s3, bucket)]
    assert everything == expected
    # page by page, one or three at a time, with key-marker/version-id-marker
    for size in (1, 3):
        seen: list[tuple[str, str]] = []
        kw: dict[str, Any] = {}
        while True:
            resp = s3.list_object_versions(Bucket=bucket, MaxKeys=size, **kw)
            seen += [(v["Key"], v["VersionId"]) for v in resp.get("Versions", [])]
            if not resp["IsTruncated"]:
                break
            kw = {
                "KeyMarker": resp["NextKeyMarker"],
                "VersionIdMarker": resp["NextVersionIdMarker"],
            }
        assert seen == expected
    # key-marker alone skips every version of that key
    resp = s3.list_object_versions(Bucket=bucket, KeyMarker="b/2")
    assert [v["Key"] for v in resp["Versions"]] == ["c d", "c d", "é", "é"]
    # delimiter and prefix
    resp = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
    assert [v["Key"] for v in resp["Versions"]] == ["a", "a", "c d", "c d", "é", "é"]
    resp = s3.list_object_versions(Bucket=bucket, Prefix="b/", MaxKeys=3)
    assert [v["Key"] for v in resp["Versions"]] == ["b/1", "b/1", "b/2"]
    assert resp["IsTruncated"] and resp["NextKeyMarker"] == "b/2"
    # encoding-type=url asked for explicitly: botocore leaves the keys encoded (a space
    # as %20, as S3 encodes it)
    resp = s3.list_object_versions(Bucket=bucket, EncodingType="url", Prefix="c")
    assert [v["Key"] for v in resp["Versions"]] == ["c%20d", "c%20d"]
    resp = s3.list_object_versions(Bucket=bucket, EncodingType="url", KeyMarker="c d")
    assert [v["Key"] for v in resp["Versions"]] == ["%C3%A9", "%C3%A9"]
    # a version-id-marker needs a key-marker
    code, status, _ = _error(
        lambda: s3.list_object_versions(Bucket=bucket, VersionIdMarker=expected[0][1])
    )
    assert (code, status) == ("InvalidArgument", 400)


def test_delete_objects_with_versions(s3: Any) -> None:
    bucket = _bucket(s3)
    v1 = s3.put_object(Bucket=bucket, Key="one", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="two", Body=b"2")
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "one", "VersionId": v1},
                {"Key": "two"},
                {"Key": "three", "VersionId": "bad version"},
            ]
        },
    )
    deleted = {d["Key"]: d for d in resp["Deleted"]}
    assert deleted["one"]["VersionId"] == v1 and "DeleteMarker" not in deleted["one"]
    assert deleted["two"]["DeleteMarker"] is True
    marker = deleted["two"]["DeleteMarkerVersionId"]
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("three", "InvalidArgument")]
    assert _versions(s3, bucket)[0] == ("two", marker, True, True)
    assert [v[0] for v in _versions(s3, bucket)].count("one") == 0


def test_copy_from_a_version_and_multipart_version_ids(s3: Any) -> None:
    bucket = _bucket(s3)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    copied = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1}
    )
    assert copied["CopySourceVersionId"] == v1
    assert copied["VersionId"] not in ("null", v1)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"
    # restoring an old version by copying it onto its own key
    s3.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1}
    )
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"first"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["VersionId"] == s3.head_object(Bucket=bucket, Key="mp")["VersionId"]


def test_tagging_by_version_and_isolation(planet: PlanetThread, s3: Any) -> None:
    bucket = _bucket(s3)
    v1 = s3.put_object(Bucket=bucket, Key="t", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="t", Body=b"2")
    s3.put_object_tagging(
        Bucket=bucket, Key="t", VersionId=v1, Tagging={"TagSet": [{"Key": "old", "Value": "y"}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="t", VersionId=v1)["TagSet"] == [
        {"Key": "old", "Value": "y"}
    ]
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    credential = planet.run(planet.planet.create_credential("ver-other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(credential)
    other = planet.boto3(credential)
    for call in (
        lambda: other.list_object_versions(Bucket=bucket),
        lambda: other.get_object(Bucket=bucket, Key="t", VersionId=v1),
        lambda: other.delete_object(Bucket=bucket, Key="t", VersionId=v1),
        lambda: other.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        ),
    ):
        assert _error(call)[0] == "AccessDenied"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # a bucket with versions is not empty
    for v in _versions(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=v[0], VersionId=v[1])
    s3.delete_bucket(Bucket=bucket)


def test_never_versioned_bucket_answers_no_version_headers(s3: Any) -> None:
    # S3 sends x-amz-version-id only for buckets that have had versioning, and a
    # simple DELETE there answers neither it nor x-amz-delete-marker
    bucket = _bucket(s3, enable=False)

    def headers(resp: dict[str, Any]) -> dict[str, str]:
        return dict(resp["ResponseMetadata"]["HTTPHeaders"])

    for key, body in (("small", b"x"), ("big", random_bytes(BIG, seed=5))):
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert "VersionId" not in put and "x-amz-version-id" not in headers(put)
        for got in (
            s3.get_object(Bucket=bucket, Key=key),
            s3.head_object(Bucket=bucket, Key=key),
        ):
            assert "VersionId" not in got and "x-amz-version-id" not in headers(got)
        copied = s3.copy_object(Bucket=bucket, Key=f"{key}-copy", CopySource=f"{bucket}/{key}")
        assert not {"x-amz-version-id", "x-amz-copy-source-version-id"} & set(headers(copied))
        deleted = s3.delete_object(Bucket=bucket, Key=key)
        assert not {"x-amz-version-id", "x-amz-delete-marker"} & set(headers(deleted))
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert "VersionId" not in done and "x-amz-version-id" not in headers(done)
