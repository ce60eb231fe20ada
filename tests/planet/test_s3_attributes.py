"""GetObjectAttributes and server-side encryption through boto3, against the planet."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import random_bytes

MiB = 1024 * 1024
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def _bucket(s3: Any) -> str:
    name = f"attr-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def _error(fn: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        fn()
    err = e.value.response["Error"]
    return err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Message"]


def _sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_simple_object_attributes(s3: Any) -> None:
    bucket = _bucket(s3)
    body = random_bytes(20_000, seed=3)
    put = s3.put_object(Bucket=bucket, Key="a", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="a", ObjectAttributes=ALL)
    assert got["ETag"] == put["ETag"].strip('"')
    assert got["Checksum"]["ChecksumSHA256"] == _sha256(body)
    assert got["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert "ObjectParts" not in got  # a simple object has none, as on S3
    assert got["StorageClass"] == "STANDARD"
    assert got["ObjectSize"] == len(body)
    assert "VersionId" not in got  # never-versioned bucket
    assert got["LastModified"]
    # only what is asked
    only = s3.get_object_attributes(Bucket=bucket, Key="a", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == len(body)
    assert "ETag" not in only and "Checksum" not in only and "StorageClass" not in only


def test_without_checksum(s3: Any) -> None:
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"hello")
    got = s3.get_object_attributes(
        Bucket=bucket, Key="plain", ObjectAttributes=["ETag", "Checksum", "ObjectSize"]
    )
    assert got["ETag"] == hashlib.md5(b"hello").hexdigest()
    assert got["ObjectSize"] == 5
    # boto3 may send its own default CRC32 on put; whatever is stored is what is shown
    for value in got.get("Checksum", {}).values():
        assert value


def _multipart(s3: Any, bucket: str, key: str, bodies: list[bytes], **kw: Any) -> dict[str, Any]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]
    parts = []
    for n, body in enumerate(bodies, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body, **kw)
        part = {"PartNumber": n, "ETag": r["ETag"]}
        if "ChecksumSHA256" in r:
            part["ChecksumSHA256"] = r["ChecksumSHA256"]
        parts.append(part)
    done: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
    )
    return done


def test_multipart_attributes_with_checksums_and_paging(s3: Any) -> None:
    bucket = _bucket(s3)
    bodies = [random_bytes(5 * MiB, seed=n) for n in (1, 2)] + [random_bytes(1000, seed=3)]
    done = _multipart(s3, bucket, "mp", bodies, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ETag"] == done["ETag"].strip('"')
    assert got["ETag"].endswith("-3")
    assert got["Checksum"]["ChecksumSHA256"] == done["ChecksumSHA256"]
    assert got["Checksum"]["ChecksumSHA256"].endswith("-3")
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert got["ObjectSize"] == sum(len(b) for b in bodies)
    op = got["ObjectParts"]
    assert op["TotalPartsCount"] == 3
    assert op["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == [
        (n, len(b), _sha256(b)) for n, b in enumerate(bodies, start=1)
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert page["IsTruncated"] is True
    assert page["MaxParts"] == 2
    assert page["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket,
        Key="mp",
        ObjectAttributes=["ObjectParts"],
        PartNumberMarker=2,
        MaxParts=2,
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    assert rest["PartNumberMarker"] == 2
    assert rest["IsTruncated"] is False


def test_multipart_without_checksums(s3: Any) -> None:
    bucket = _bucket(s3)
    bodies = [random_bytes(5 * MiB, seed=7), random_bytes(10, seed=8)]
    _multipart(s3, bucket, "mp", bodies)
    got = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts", "ObjectSize"]
    )
    parts = got["ObjectParts"]["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 10)]
    assert got["ObjectSize"] == 5 * MiB + 10


def test_versions(s3: Any) -> None:
    bucket = _bucket(s3)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"second")["VersionId"]
    latest = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert (latest["VersionId"], latest["ObjectSize"]) == (v2, 6)
    old = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=v1, ObjectAttributes=["ObjectSize", "ETag"]
    )
    assert (old["VersionId"], old["ObjectSize"]) == (v1, 3)
    assert old["ETag"] == hashlib.md5(b"one").hexdigest()
    s3.delete_object(Bucket=bucket, Key="k")
    code, status, _ = _error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag"])
    )
    assert (code, status) == ("NoSuchKey", 404)


def test_errors(s3: Any) -> None:
    bucket = _bucket(s3)
    code, status, _ = _error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key="nope", ObjectAttributes=["ETag"])
    )
    assert (code, status) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    code, status, _ = _error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key="a", ObjectAttributes=["Colour"])
    )
    assert (code, status) == ("InvalidArgument", 400)
    code, status, _ = _error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key="a", ObjectAttributes=[])
    )
    assert (code, status) == ("InvalidArgument", 400)


# -- server-side encryption -------------------------------------------------------------


def test_bucket_encryption(s3: Any) -> None:
    bucket = _bucket(s3)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    aes = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=aes)
    kms = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}
    code, status, message = _error(
        lambda: s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms)
    )
    assert (code, status) == ("InvalidArgument", 400)
    assert "KMS" in message
    s3.delete_bucket_encryption(Bucket=bucket)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    code, status, _ = _error(lambda: s3.get_bucket_encryption(Bucket=f"{bucket}-missing"))
    assert (code, status) == ("NoSuchBucket", 404)


def test_object_encryption_headers(s3: Any) -> None:
    bucket = _bucket(s3)
    put = s3.put_object(Bucket=bucket, Key="a", Body=b"data", ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    # everything is encrypted: asked for or not, objects say so
    plain = s3.put_object(Bucket=bucket, Key="b", Body=b"data")
    assert plain["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="b")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    copied = s3.copy_object(
        Bucket=bucket,
        Key="c",
        CopySource={"Bucket": bucket, "Key": "a"},
        ServerSideEncryption="AES256",
    )
    assert copied["ServerSideEncryption"] == "AES256"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="m", ServerSideEncryption="AES256")
    assert mpu["ServerSideEncryption"] == "AES256"
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=mpu["UploadId"])
    for call in (
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms"),
        lambda: s3.copy_object(
            Bucket=bucket,
            Key="k",
            CopySource={"Bucket": bucket, "Key": "a"},
            ServerSideEncryption="aws:kms",
        ),
        lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="k", ServerSideEncryption="aws:kms", SSEKMSKeyId="key"
        ),
    ):
        code, status, message = _error(call)
        assert (code, status) == ("InvalidArgument", 400)
        assert "KMS" in message
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")  # nothing was written


def test_customer_keys_are_refused_over_plain_http(s3: Any) -> None:
    """SSE-C over plain HTTP would send the key in clear: refused as S3 refuses it
    (this planet's gateway leaves sse_c_over_http off), reads as well as writes, and
    nothing is stored without the key."""
    bucket = _bucket(s3)
    key = b"k" * 32
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")
    for call in (
        lambda: s3.put_object(
            Bucket=bucket, Key="c", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=key
        ),
        lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key
        ),
        lambda: s3.copy_object(
            Bucket=bucket,
            Key="c",
            CopySource={"Bucket": bucket, "Key": "plain"},
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=key,
        ),
        lambda: s3.get_object(
            Bucket=bucket, Key="plain", SSECustomerAlgorithm="AES256", SSECustomerKey=key
        ),
    ):
        code, status, message = _error(call)
        assert (code, status) == ("InvalidRequest", 400)
        assert message == (
            "Requests specifying Server Side Encryption with Customer provided keys must be"
            " made over a secure connection."
        )
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="c")  # nothing was written
