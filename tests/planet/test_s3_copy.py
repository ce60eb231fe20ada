"""CopyObject and UploadPartCopy through boto3, plus what copies carry: metadata,
stored headers, response overrides, partNumber reads of multipart objects."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes

SRC = "copy-src"
DST = "copy-dst"
PART = 5 * 1024 * 1024


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _status(err: ClientError) -> int:
    return int(err.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture(scope="module")
def buckets(s3: S3Client) -> None:
    s3.create_bucket(Bucket=SRC)
    s3.create_bucket(Bucket=DST)


HEADERS = {
    "ContentType": "text/plain; charset=utf-8",
    "ContentEncoding": "identity",
    "ContentDisposition": 'attachment; filename="a.txt"',
    "ContentLanguage": "de-CH",
    "CacheControl": "max-age=60",
    "Metadata": {"colour": "blue", "owner": "ada lovelace"},
}


def _assert_headers(resp: Mapping[str, object], expected: Mapping[str, object]) -> None:
    for name, value in expected.items():
        assert resp[name] == value, name


def test_stored_headers_round_trip(s3: S3Client, buckets: None) -> None:
    import datetime

    expires = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    s3.put_object(Bucket=SRC, Key="headers", Body=b"hi", Expires=expires, **HEADERS)
    for resp in (
        s3.head_object(Bucket=SRC, Key="headers"),
        s3.get_object(Bucket=SRC, Key="headers"),
    ):
        _assert_headers(resp, HEADERS)
        assert resp["ResponseMetadata"]["HTTPHeaders"]["expires"] == (
            "Thu, 02 Jan 2031 03:04:05 GMT"
        )


def test_response_overrides(s3: S3Client, buckets: None) -> None:
    s3.put_object(Bucket=SRC, Key="override", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=SRC,
        Key="override",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="gzip",
        ResponseExpires="Wed, 21 Oct 2015 07:28:00 GMT",
    )
    h = got["ResponseMetadata"]["HTTPHeaders"]
    assert h["content-type"] == "application/json"
    assert h["content-disposition"] == "inline"
    assert h["cache-control"] == "no-cache"
    assert h["content-language"] == "fr"
    assert h["content-encoding"] == "gzip"
    assert h["expires"] == "Wed, 21 Oct 2015 07:28:00 GMT"


def test_user_metadata_limit(s3: S3Client, buckets: None) -> None:
    s3.put_object(Bucket=SRC, Key="meta-ok", Body=b"x", Metadata={"k": "v" * 2000})
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=SRC, Key="meta-big", Body=b"x", Metadata={"k": "v" * 2048})
    assert _code(e.value) == "MetadataTooLarge" and _status(e.value) == 400


@pytest.mark.parametrize("size", [5, 70_000])
def test_copy_keeps_metadata(s3: S3Client, buckets: None, size: int) -> None:
    data = random_bytes(size, seed=size)
    s3.put_object(Bucket=SRC, Key=f"orig-{size}", Body=data, **HEADERS)
    for bucket in (SRC, DST):
        r = s3.copy_object(
            Bucket=bucket, Key=f"copy-{size}", CopySource={"Bucket": SRC, "Key": f"orig-{size}"}
        )
        assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket=bucket, Key=f"copy-{size}")
        assert got["Body"].read() == data
        _assert_headers(got, HEADERS)


def test_copy_replace_and_self_copy(s3: S3Client, buckets: None) -> None:
    s3.put_object(Bucket=SRC, Key="self", Body=b"same bytes", **HEADERS)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=SRC, Key="self", CopySource={"Bucket": SRC, "Key": "self"})
    assert _code(e.value) == "InvalidRequest"
    assert "copy an object to itself" in e.value.response["Error"]["Message"]
    s3.copy_object(
        Bucket=SRC,
        Key="self",
        CopySource={"Bucket": SRC, "Key": "self"},
        MetadataDirective="REPLACE",
        ContentType="application/x-new",
        Metadata={"fresh": "yes"},
    )
    got = s3.get_object(Bucket=SRC, Key="self")
    assert got["Body"].read() == b"same bytes"
    assert got["ContentType"] == "application/x-new"
    assert got["Metadata"] == {"fresh": "yes"}
    assert "ContentDisposition" not in got


def test_copy_encoded_keys_and_versions(s3: S3Client, buckets: None) -> None:
    key = "dir/a b+c%d?ü=&.txt"
    s3.put_object(Bucket=SRC, Key=key, Body=b"odd name")
    s3.copy_object(Bucket=DST, Key=key, CopySource={"Bucket": SRC, "Key": key})
    assert s3.get_object(Bucket=DST, Key=key)["Body"].read() == b"odd name"
    r = s3.copy_object(Bucket=DST, Key="from-version", CopySource={"Bucket": SRC, "Key": key})
    assert "CopySourceVersionId" not in r  # a never-versioned source has no version ids
    # ... but its objects are S3's "null" version (versioned copies: test_s3_versioning.py)
    s3.copy_object(
        Bucket=DST, Key="from-version", CopySource={"Bucket": SRC, "Key": key, "VersionId": "null"}
    )
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=DST,
            Key="from-version",
            CopySource={"Bucket": SRC, "Key": key, "VersionId": "0" * 32},
        )
    assert _status(e.value) == 404


def test_copy_source_conditions(s3: S3Client, buckets: None) -> None:
    import datetime

    s3.put_object(Bucket=SRC, Key="cond", Body=b"c")
    head = s3.head_object(Bucket=SRC, Key="cond")
    etag, modified = head["ETag"], head["LastModified"]
    hour = datetime.timedelta(hours=1)
    src = {"Bucket": SRC, "Key": "cond"}
    for ok in (
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": '"x"'},
        {"CopySourceIfModifiedSince": modified - hour},
        {"CopySourceIfUnmodifiedSince": modified + hour},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": modified - hour},
    ):
        s3.copy_object(Bucket=DST, Key="cond", CopySource=src, **ok)
    for bad in (
        {"CopySourceIfMatch": '"x"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": modified + hour},
        {"CopySourceIfUnmodifiedSince": modified - hour},
    ):
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=DST, Key="cond-bad", CopySource=src, **bad)
        assert _status(e.value) == 412 and _code(e.value) == "PreconditionFailed", bad


def test_copy_errors(planet: PlanetThread, s3: S3Client, buckets: None) -> None:
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=DST, Key="x", CopySource={"Bucket": SRC, "Key": "absent"})
    assert _code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=DST, Key="x", CopySource={"Bucket": "no-such-bucket", "Key": "a"})
    assert _code(e.value) == "NoSuchBucket"
    # another project's bucket is out of reach
    other = planet.run(planet.planet.create_credential("copy-other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(other)
    s3_other = planet.boto3(other)
    s3_other.create_bucket(Bucket="copy-foreign")
    s3_other.put_object(Bucket="copy-foreign", Key="secret", Body=b"theirs")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=DST, Key="x", CopySource={"Bucket": "copy-foreign", "Key": "secret"})
    assert _code(e.value) == "AccessDenied"


@pytest.fixture(scope="module")
def multipart_source(s3: S3Client, buckets: None) -> list[bytes]:
    datas = [random_bytes(PART, seed=21), random_bytes(PART, seed=22), random_bytes(1000, seed=23)]
    up = s3.create_multipart_upload(Bucket=SRC, Key="mp", ContentType="video/mp4")
    parts = []
    for n, data in enumerate(datas, start=1):
        r = s3.upload_part(Bucket=SRC, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=data)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=SRC, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    return datas


def test_part_number_reads(s3: S3Client, multipart_source: list[bytes]) -> None:
    datas = multipart_source
    total = sum(len(d) for d in datas)
    start = 0
    for n, data in enumerate(datas, start=1):
        got = s3.get_object(Bucket=SRC, Key="mp", PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=SRC, Key="mp", PartNumber=n)
        assert head["PartsCount"] == 3 and head["ContentLength"] == len(data)
        start += len(data)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=SRC, Key="mp", PartNumber=4)
    assert _code(e.value) == "InvalidPartNumber" and _status(e.value) == 416
    s3.put_object(Bucket=SRC, Key="simple", Body=b"one part")
    got = s3.get_object(Bucket=SRC, Key="simple", PartNumber=1)
    assert got["Body"].read() == b"one part"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=SRC, Key="simple", PartNumber=2)
    assert _status(e.value) == 416


def test_copy_multipart_object(s3: S3Client, multipart_source: list[bytes]) -> None:
    whole = b"".join(multipart_source)
    r = s3.copy_object(Bucket=DST, Key="mp-copy", CopySource={"Bucket": SRC, "Key": "mp"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    got = s3.get_object(Bucket=DST, Key="mp-copy")
    assert got["ContentType"] == "video/mp4"
    assert got["Body"].read() == whole


def test_upload_part_copy(s3: S3Client, multipart_source: list[bytes]) -> None:
    whole = b"".join(multipart_source)
    src = {"Bucket": SRC, "Key": "mp"}
    up = s3.create_multipart_upload(Bucket=DST, Key="assembled")
    uid = up["UploadId"]
    r1 = s3.upload_part_copy(
        Bucket=DST, Key="assembled", UploadId=uid, PartNumber=1, CopySource=src
    )
    assert r1["CopyPartResult"]["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    rng = f"bytes=100-{100 + PART - 1}"
    r2 = s3.upload_part_copy(
        Bucket=DST, Key="assembled", UploadId=uid, PartNumber=2, CopySource=src, CopySourceRange=rng
    )
    r3 = s3.upload_part_copy(
        Bucket=DST,
        Key="assembled",
        UploadId=uid,
        PartNumber=3,
        CopySource=src,
        CopySourceRange="bytes=7-7",
    )
    for bad, code in (
        ("bytes=5-", "InvalidArgument"),
        ("bytes=9-3", "InvalidRange"),
        (f"bytes=0-{len(whole)}", "InvalidRange"),
    ):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(
                Bucket=DST,
                Key="assembled",
                UploadId=uid,
                PartNumber=4,
                CopySource=src,
                CopySourceRange=bad,
            )
        assert _code(e.value) == code, bad
    parts = [
        {"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]}
        for n, r in ((1, r1), (2, r2), (3, r3))
    ]
    s3.complete_multipart_upload(
        Bucket=DST, Key="assembled", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket=DST, Key="assembled")["Body"].read()
    assert got == whole + whole[100 : 100 + PART] + whole[7:8]


def test_copy_tags_follow_the_directive(s3: S3Client, buckets: None) -> None:
    s3.put_object(Bucket=SRC, Key="tagged", Body=b"t", Tagging="team=blue")
    src = {"Bucket": SRC, "Key": "tagged"}
    s3.copy_object(Bucket=DST, Key="tags-copied", CopySource=src)
    tags = s3.get_object_tagging(Bucket=DST, Key="tags-copied")["TagSet"]
    assert tags == [{"Key": "team", "Value": "blue"}]
    s3.copy_object(
        Bucket=DST,
        Key="tags-replaced",
        CopySource=src,
        TaggingDirective="REPLACE",
        Tagging="team=red",
    )
    tags = s3.get_object_tagging(Bucket=DST, Key="tags-replaced")["TagSet"]
    assert tags == [{"Key": "team", "Value": "red"}]


def test_slow_copy_keeps_the_connection_alive(
    planet: PlanetThread,
    s3: S3Client,
    multipart_source: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skymesh.gateway.s3.handlers import copy as copy_handlers
    from tests.planet import s3raw

    monkeypatch.setattr(copy_handlers, "KEEPALIVE_AFTER", 0.0)
    monkeypatch.setattr(copy_handlers, "KEEPALIVE_INTERVAL", 0.01)
    whole = b"".join(multipart_source)
    r = s3.copy_object(Bucket=DST, Key="slow", CopySource={"Bucket": SRC, "Key": "mp"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    assert s3.get_object(Bucket=DST, Key="slow")["Body"].read() == whole
    # an error after the 200 went out arrives as an <Error> body, which SDKs recognise
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=DST, Key="slow", CopySource={"Bucket": SRC, "Key": "mp"}, IfNoneMatch="*"
        )
    assert _code(e.value) == "PreconditionFailed"
    raw = s3raw.request(
        planet,
        "PUT",
        f"/{DST}/slow",
        headers={"x-amz-copy-source": f"/{SRC}/mp", "If-None-Match": "*"},
    )
    assert raw.status == 200 and raw.code == "PreconditionFailed"
    assert raw.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n ')
