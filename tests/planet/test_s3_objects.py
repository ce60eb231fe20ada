"""boto3 against a live in-process network: objects round-trip byte-exact, ranges, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ON_BOTH_ENGINES, S3Client, random_bytes

pytestmark = ON_BOTH_ENGINES

SIZES = [0, 1, 4096, 4097, 5 * 1024 * 1024]


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="objects")
    return "objects"


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(s3: S3Client, bucket: str, size: int) -> None:
    data = random_bytes(size, seed=size)
    put = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    assert got["ContentLength"] == size
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=f"obj-{size}")
    assert head["ContentLength"] == size


@pytest.mark.parametrize("size", [4097, 5 * 1024 * 1024])
def test_ranged_reads(s3: S3Client, bucket: str, size: int) -> None:
    data = random_bytes(size, seed=size + 1)
    s3.put_object(Bucket=bucket, Key=f"range-{size}", Body=data)
    for start, end in [
        (0, 0),
        (0, 9),
        (1, 1),
        (size - 1, size - 1),
        (4000, 4200),
        (65519, 65521),
        (size // 2, size - 1),
    ]:
        if end >= size:
            continue
        got = s3.get_object(Bucket=bucket, Key=f"range-{size}", Range=f"bytes={start}-{end}")
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{end}/{size}"
        assert got["Body"].read() == data[start : end + 1]
    got = s3.get_object(Bucket=bucket, Key=f"range-{size}", Range="bytes=-100")
    assert got["Body"].read() == data[-100:]
    got = s3.get_object(Bucket=bucket, Key=f"range-{size}", Range=f"bytes={size - 10}-")
    assert got["Body"].read() == data[-10:]


def test_invalid_range(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="small", Body=b"hello")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="small", Range="bytes=5-10")
    assert _code(e.value) == "InvalidRange"


def test_metadata_and_content_type(s3: S3Client, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="meta",
        Body=b"x" * 10,
        ContentType="text/plain",
        Metadata={"color": "blue", "Shape": "round"},
        CacheControl="max-age=60",
    )
    head = s3.head_object(Bucket=bucket, Key="meta")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue", "shape": "round"}
    assert head["CacheControl"] == "max-age=60"


def test_overwrite_replaces(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="over", Body=random_bytes(100_000, 1))
    new = random_bytes(50_000, 2)
    s3.put_object(Bucket=bucket, Key="over", Body=new)
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == new


def test_delete(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gone", Body=b"bye")
    s3.delete_object(Bucket=bucket, Key="gone")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="gone")
    assert _code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="gone")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # deleting what is not there succeeds, as in S3
    s3.delete_object(Bucket=bucket, Key="gone")


def test_unicode_and_odd_keys(s3: S3Client, bucket: str) -> None:
    for key in [
        "dir/sub dir/file name.txt",
        "ünïcødé/ключ/鍵",
        "a+b=c&d",
        "trailing/",
        "x//y",
        "%41",
    ]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


def test_multipart_upload(s3: S3Client, bucket: str) -> None:
    part = 5 * 1024 * 1024
    parts_data = [random_bytes(part, 10), random_bytes(part, 11), random_bytes(1234, 12)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="application/x-test")
    uid = up["UploadId"]
    etags = []
    for i, chunk in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=i, Body=chunk)
        etags.append(r["ETag"])
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    # invisible until completed
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
    )
    assert done["Location"] == f"{s3.meta.endpoint_url}/{bucket}/mp"
    md5s = b"".join(hashlib.md5(d).digest() for d in parts_data)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    whole = b"".join(parts_data)
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == whole
    assert got["ContentType"] == "application/x-test"
    r = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={part - 5}-{part + 5}")
    assert r["Body"].read() == whole[part - 5 : part + 6]


def test_complete_multipart_upload_repeated(s3: S3Client, bucket: str) -> None:
    # a client whose first answer was lost completes again: S3 answers the same success
    up = s3.create_multipart_upload(Bucket=bucket, Key="again")
    uid = up["UploadId"]
    parts = []
    for n, data in ((1, random_bytes(5 * 1024 * 1024, 20)), (2, b"tail")):
        r = s3.upload_part(Bucket=bucket, Key="again", UploadId=uid, PartNumber=n, Body=data)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    first = s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    second = s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    assert (second["ETag"], second["Key"], second["Bucket"]) == (
        first["ETag"],
        first["Key"],
        first["Bucket"],
    )
    assert s3.head_object(Bucket=bucket, Key="again")["ETag"] == first["ETag"]


def test_multipart_errors(s3: S3Client, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp-bad")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp-bad", UploadId=uid, PartNumber=1, Body=b"a" * 100)[
        "ETag"
    ]
    e2 = s3.upload_part(Bucket=bucket, Key="mp-bad", UploadId=uid, PartNumber=2, Body=b"b" * 100)[
        "ETag"
    ]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp-bad",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
            },
        )
    assert _code(e.value) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp-bad",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]
            },
        )
    assert _code(e.value) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp-bad",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
        )
    assert _code(e.value) == "InvalidPart"
    s3.abort_multipart_upload(Bucket=bucket, Key="mp-bad", UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="mp-bad", UploadId=uid)
    assert _code(e.value) == "NoSuchUpload"


def test_upload_fileobj_uses_multipart(s3: S3Client, bucket: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    data = random_bytes(12 * 1024 * 1024, 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(path), bucket, "transfer", Config=cfg)
    out = tmp_path / "back.bin"
    s3.download_file(bucket, "transfer", str(out), Config=cfg)
    assert out.read_bytes() == data
