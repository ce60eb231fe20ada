"""S3 checksums and Content-MD5 through boto3 (which computes them itself) and raw requests.

A body that fails its checksum is refused with BadDigest and never becomes
visible; a good one keeps its checksum, returned with ``x-amz-checksum-mode``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

from skymesh.gateway.s3.handlers.checksums import Checksum
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet import s3raw

BUCKET = "sums"
ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _missing(s3: S3Client, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as e:
        return _code(e) in ("404", "NoSuchKey")
    return False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [100, 70_000])
def test_checksum_round_trip(s3: S3Client, bucket: str, algorithm: str, size: int) -> None:
    key = f"{algorithm}-{size}"
    data = random_bytes(size, seed=size)
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    value = put[f"Checksum{algorithm}"]
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == value
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    # boto3 validates the body against the checksum we return
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == value
    assert got["Body"].read() == data
    if algorithm == "CRC32":
        assert base64.b64decode(value) == zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "SHA256":
        assert base64.b64decode(value) == hashlib.sha256(data).digest()
    plain = s3.head_object(Bucket=bucket, Key=key)
    assert f"Checksum{algorithm}" not in plain  # only when asked


def test_ranged_get_has_no_whole_object_checksum(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ranged", Body=b"0123456789", ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=2-4", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"234"
    assert "ChecksumCRC32" not in got


@pytest.mark.parametrize("size", [10, 70_000])
def test_wrong_checksum_is_bad_digest(s3: S3Client, bucket: str, size: int) -> None:
    wrong = base64.b64encode(b"\0\0\0\0").decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=f"wrong-{size}", Body=b"x" * size, ChecksumCRC32=wrong)
    assert _code(e.value) == "BadDigest"
    assert _missing(s3, f"wrong-{size}")
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key=f"wrong-sha-{size}",
            Body=b"x" * size,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(b"other").digest()).decode(),
        )
    assert _code(e.value) == "BadDigest"
    assert _missing(s3, f"wrong-sha-{size}")


def test_bad_checksum_headers(planet: PlanetThread, bucket: str) -> None:
    crc = base64.b64encode(zlib.crc32(b"abc").to_bytes(4, "big")).decode()
    sha1 = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    two = {"x-amz-checksum-crc32": crc, "x-amz-checksum-sha1": sha1}
    r = s3raw.request(planet, "PUT", f"/{bucket}/two", b"abc", two)
    assert r.status == 400 and r.code == "InvalidRequest", r.body
    r = s3raw.request(planet, "PUT", f"/{bucket}/junk", b"abc", {"x-amz-checksum-crc32": "!!"})
    assert r.status == 400 and r.code == "InvalidRequest", r.body


def test_wrong_trailer_is_bad_digest(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    data = random_bytes(80_000, seed=9)
    wrong = base64.b64encode(hashlib.sha256(b"no").digest()).decode()
    body = s3raw.unsigned_chunks([data], {"x-amz-checksum-sha256": wrong})
    headers = s3raw.chunked_headers(
        len(data), len(body), **{"x-amz-trailer": "x-amz-checksum-sha256"}
    )
    path = f"/{bucket}/bad-trailer"
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    r = s3raw.send(planet, "PUT", path, signed.headers, body)
    assert r.status == 400 and r.code == "BadDigest", r.body
    assert _missing(s3, "bad-trailer")


def test_content_md5(s3: S3Client, bucket: str) -> None:
    data = b"content md5"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5-ok", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5-bad", Body=data, ContentMD5=bad)
    assert _code(e.value) == "BadDigest"
    assert _missing(s3, "md5-bad")
    for invalid in ("not-base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="md5-invalid", Body=data, ContentMD5=invalid)
        assert _code(e.value) == "InvalidDigest"
    assert _missing(s3, "md5-invalid")


def test_multipart_part_checksums(s3: S3Client, bucket: str) -> None:
    key = "mp-sums"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C")
    parts = []
    datas = [random_bytes(5 * 1024 * 1024, seed=11), b"last part"]
    for n, data in enumerate(datas, start=1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=up["UploadId"],
            PartNumber=n,
            Body=data,
            ChecksumAlgorithm="CRC32C",
        )
        assert r["ChecksumCRC32C"]
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32C": r["ChecksumCRC32C"]})
    bad = base64.b64encode(b"\1\2\3\4").decode()
    with pytest.raises(ClientError) as e:
        s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=up["UploadId"],
            PartNumber=3,
            Body=b"bad",
            ChecksumCRC32C=bad,
        )
    assert _code(e.value) == "BadDigest"
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"])["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(datas)


@pytest.mark.parametrize(("sent", "stored"), [("gzip, aws-chunked", "gzip"), ("aws-chunked", None)])
def test_aws_chunked_is_not_stored_as_content_encoding(
    planet: PlanetThread, s3: S3Client, bucket: str, sent: str, stored: str | None
) -> None:
    # aws-chunked frames the request's body; S3 strips it from the stored encoding
    data = b"compressed, say"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = s3raw.unsigned_chunks([data], {"x-amz-checksum-crc32": crc})
    headers = s3raw.chunked_headers(
        len(data), len(body), **{"x-amz-trailer": "x-amz-checksum-crc32"}
    )
    headers["Content-Encoding"] = sent
    path = f"/{bucket}/encoded"
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    r = s3raw.send(planet, "PUT", path, signed.headers, body)
    assert r.status == 200, r.body
    got = s3.get_object(Bucket=bucket, Key="encoded")
    assert got["Body"].read() == data
    assert got.get("ContentEncoding") == stored


def test_gzip_body_is_stored_as_sent(s3: S3Client, bucket: str) -> None:
    # the object's bytes are what was sent: S3 never inflates a gzip body
    data = gzip.compress(b"hello " * 100)
    s3.put_object(Bucket=bucket, Key="gz", Body=data, ContentEncoding="gzip")
    got = s3.get_object(Bucket=bucket, Key="gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == data


def _wrong_and_malformed(algorithm: str) -> tuple[str, str, str]:
    """(header name, a well-formed value that is not the body's, one of the wrong length)."""
    size = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}[algorithm]
    return (
        f"x-amz-checksum-{algorithm}",
        base64.b64encode(b"\x07" * size).decode(),
        base64.b64encode(b"\x07" * (size + 1)).decode(),
    )


@pytest.mark.parametrize("algorithm", [a.lower() for a in ALGORITHMS])
def test_every_path_checks_every_algorithm(
    planet: PlanetThread, s3: S3Client, bucket: str, algorithm: str
) -> None:
    """PutObject, UploadPart and an aws-chunked trailer: a mismatch is BadDigest naming the
    algorithm, a value that cannot be one of the algorithm (wrong length, not base64) is
    InvalidRequest; nothing is stored either way."""
    name, wrong, malformed = _wrong_and_malformed(algorithm)
    up = s3.create_multipart_upload(Bucket=bucket, Key=f"every-{algorithm}")
    paths = [
        f"/{bucket}/every-{algorithm}",
        f"/{bucket}/every-{algorithm}?partNumber=1&uploadId={up['UploadId']}",
    ]
    for path in paths:
        r = s3raw.request(planet, "PUT", path, b"body", {name: wrong})
        assert r.status == 400 and r.code == "BadDigest", r.body
        message = f"The {algorithm.upper()} you specified did not match the calculated checksum."
        assert message.encode() in r.body
        for bad in (malformed, "not base64!"):
            r = s3raw.request(planet, "PUT", path, b"body", {name: bad})
            assert r.status == 400 and r.code == "InvalidRequest", r.body
    for value, code in ((wrong, "BadDigest"), (malformed, "InvalidRequest")):
        body = s3raw.unsigned_chunks([b"body"], {name: value})
        headers = s3raw.chunked_headers(4, len(body), **{"x-amz-trailer": name})
        for path in paths:
            signed = s3raw.sign(planet, "PUT", path, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
            r = s3raw.send(planet, "PUT", path, signed.headers, body)
            assert r.status == 400 and r.code == code, r.body
    key = f"every-{algorithm}"
    assert _missing(s3, key)
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"])
    # CompleteMultipartUpload: a part checksum that is not the part's is InvalidPart
    good = Checksum(algorithm)
    good.update(b"body")
    r = s3raw.request(planet, "PUT", paths[1], b"body", {name: good.b64()})
    assert r.status == 200 and r.headers[name] == good.b64(), r.body
    element = "Checksum" + algorithm.upper()
    for listed in (wrong, malformed):
        xml = (
            f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{r.headers['ETag']}"
            f"</ETag><{element}>{listed}</{element}></Part></CompleteMultipartUpload>"
        ).encode()
        done = s3raw.request(planet, "POST", f"{paths[0]}?uploadId={up['UploadId']}", xml)
        assert done.status == 400 and done.code == "InvalidPart", done.body
    assert _missing(s3, key)
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("CRC32", "COMPOSITE"), ("SHA256", "COMPOSITE"), ("CRC64NVME", "FULL_OBJECT")],
)
def test_create_multipart_upload_answers_its_checksum(
    s3: S3Client, bucket: str, algorithm: str, kind: str
) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp-alg", ChecksumAlgorithm=algorithm)
    assert up["ChecksumAlgorithm"] == algorithm
    assert up["ChecksumType"] == kind
    plain = s3.create_multipart_upload(Bucket=bucket, Key="mp-alg")
    assert "ChecksumAlgorithm" not in plain and "ChecksumType" not in plain


def test_create_multipart_upload_refuses_impossible_checksum_types(
    s3: S3Client, bucket: str
) -> None:
    for algorithm, kind in (("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")):
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(
                Bucket=bucket, Key="mp-alg", ChecksumAlgorithm=algorithm, ChecksumType=kind
            )
        assert _code(e.value) == "InvalidRequest"
