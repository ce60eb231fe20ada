"""Conditional reads (GET/HEAD with If-*) and conditional writes (PUT/Complete with
If-None-Match / If-Match), with S3's precedence and status codes."""

from __future__ import annotations

import datetime
import threading

import pytest
from botocore.exceptions import ClientError

from skymesh.gateway.s3.xml import http_date
from skymesh.testing.planet import PlanetThread
from tests.conftest import ON_BOTH_ENGINES, S3Client, random_bytes
from tests.planet import s3raw

pytestmark = ON_BOTH_ENGINES

BUCKET = "cond"
PART = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def _status(err: ClientError) -> int:
    return int(err.response["ResponseMetadata"]["HTTPStatusCode"])


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


@pytest.fixture(scope="module")
def obj(s3: S3Client, bucket: str) -> tuple[str, datetime.datetime]:
    s3.put_object(Bucket=bucket, Key="read", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="read")
    return head["ETag"], head["LastModified"]


HOUR = datetime.timedelta(hours=1)


@pytest.mark.parametrize("method", ["get_object", "head_object"])
def test_conditional_reads(
    s3: S3Client, bucket: str, obj: tuple[str, datetime.datetime], method: str
) -> None:
    etag, modified = obj
    call = getattr(s3, method)
    ok: list[dict[str, object]] = [
        {"IfMatch": etag},
        {"IfMatch": "*"},
        {"IfNoneMatch": '"other"'},
        {"IfModifiedSince": modified - HOUR},
        {"IfUnmodifiedSince": modified},
        {"IfUnmodifiedSince": modified + HOUR},
        # If-Match true wins over If-Unmodified-Since false
        {"IfMatch": etag, "IfUnmodifiedSince": modified - HOUR},
        # If-None-Match true (no match) wins over If-Modified-Since false
        {"IfNoneMatch": '"other"', "IfModifiedSince": modified + HOUR},
    ]
    for conditions in ok:
        resp = call(Bucket=bucket, Key="read", **conditions)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, conditions
    failed: list[tuple[dict[str, object], int]] = [
        ({"IfMatch": '"other"'}, 412),
        ({"IfUnmodifiedSince": modified - HOUR}, 412),
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": "*"}, 304),
        ({"IfModifiedSince": modified}, 304),
        ({"IfModifiedSince": modified + HOUR}, 304),
        # If-None-Match false wins over If-Modified-Since true
        ({"IfNoneMatch": etag, "IfModifiedSince": modified - HOUR}, 304),
        # a failed If-Match is 412 even when If-None-Match would say 304
        ({"IfMatch": '"other"', "IfNoneMatch": etag}, 412),
    ]
    for conditions, status in failed:
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="read", **conditions)
        assert _status(e.value) == status, conditions


def test_not_modified_has_no_body(
    planet: PlanetThread, bucket: str, obj: tuple[str, datetime.datetime]
) -> None:
    etag, modified = obj
    r = s3raw.request(planet, "GET", f"/{bucket}/read", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    assert r.headers["ETag"] == etag
    r = s3raw.request(planet, "GET", f"/{bucket}/read", headers={"If-Match": '"nope"'})
    assert r.status == 412 and r.code == "PreconditionFailed"
    since = http_date(modified.timestamp())
    r = s3raw.request(planet, "GET", f"/{bucket}/read", headers={"If-Modified-Since": since})
    assert r.status == 304 and r.body == b""


@pytest.mark.parametrize("size", [10, 300_000])
def test_conditional_put(s3: S3Client, bucket: str, size: int) -> None:
    key = f"cput-{size}"
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"a" * size, IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"b" * size, IfNoneMatch="*")
    assert _status(e.value) == 412 and _code(e.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"c" * size, IfMatch='"0123"')
    assert _status(e.value) == 412
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"a" * size
    s3.put_object(Bucket=bucket, Key=key, Body=b"d" * size, IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"d" * size
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=f"absent-{size}", Body=b"e", IfMatch=first["ETag"])
    assert _status(e.value) == 404 and _code(e.value) == "NoSuchKey"


def test_racing_create_only_one_wins(planet: PlanetThread, bucket: str) -> None:
    results: list[str] = []

    def put(seed: int) -> None:
        client = planet.boto3()
        try:
            client.put_object(
                Bucket=bucket, Key="race", Body=random_bytes(200_000, seed), IfNoneMatch="*"
            )
            results.append("ok")
        except ClientError as e:
            results.append(_code(e))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["PreconditionFailed", "PreconditionFailed", "ok"]


def test_conditional_complete(s3: S3Client, bucket: str) -> None:
    key = "cmp"
    s3.put_object(Bucket=bucket, Key=key, Body=b"existing")
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"p1")
    parts = {"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]}
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload=parts, IfNoneMatch="*"
        )
    assert _status(e.value) == 412
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"existing"
    current = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    # the upload survived the failed completion: complete it with a matching If-Match
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload=parts, IfMatch=current
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"p1"
