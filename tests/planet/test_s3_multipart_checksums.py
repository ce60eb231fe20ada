"""Composite multipart checksums through boto3: kept per part, checked, combined."""

from __future__ import annotations

import base64
import uuid
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import random_bytes
from tests.planet import s3raw

MiB = 1024 * 1024


def _composite_crc32(part_checksums: list[str]) -> str:
    raw = b"".join(base64.b64decode(c) for c in part_checksums)
    return base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode() + f"-{len(part_checksums)}"


def test_composite_checksum(s3: Any) -> None:
    bucket = f"mpck-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    bodies = [random_bytes(5 * MiB, seed=1), random_bytes(1000, seed=2)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", ChecksumAlgorithm="CRC32")
    uid = upload["UploadId"]
    parts = []
    for n, body in enumerate(bodies, start=1):
        r = s3.upload_part(
            Bucket=bucket,
            Key="big",
            UploadId=uid,
            PartNumber=n,
            Body=body,
            ChecksumAlgorithm="CRC32",
        )
        expected = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        assert r["ChecksumCRC32"] == expected
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": expected})
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)["Parts"]
    assert [p["ChecksumCRC32"] for p in listed] == [p["ChecksumCRC32"] for p in parts]
    # a part checksum that is not the one uploaded is InvalidPart, and changes nothing
    wrong = [dict(parts[0], ChecksumCRC32="AAAAAA=="), parts[1]]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": wrong}
        )
    assert e.value.response["Error"]["Code"] == "InvalidPart"
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    composite = _composite_crc32([p["ChecksumCRC32"] for p in parts])
    assert done["ChecksumCRC32"] == composite
    head = s3.head_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite
    got = s3.get_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == composite
    assert got["Body"].read() == b"".join(bodies)


def test_parts_without_checksums_have_no_composite(planet: PlanetThread, s3: Any) -> None:
    bucket = f"mpck-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    # botocore always adds a checksum: a raw signed request sends a part without one
    r = s3raw.request(planet, "PUT", f"/{bucket}/k?partNumber=1&uploadId={uid}", b"plain part")
    assert r.status == 200, r.body
    etag = r.headers["ETag"]
    assert "ChecksumCRC32" not in s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"][0]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert "ChecksumCRC32" not in done
