"""Objects of many segments (small segments, so tests stay quick): inline tails, multipart keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from skymesh.client.upload import region_safe
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client, random_bytes

SEGMENT = 256 * 1024


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("small-segments")
    thread = PlanetThread(
        Planet(root, PlanetConfig(coordinator_overrides={"max_segment_size": SEGMENT}))
    ).start()
    try:
        yield thread
    finally:
        thread.stop()


def _segments(planet: PlanetThread, bucket: str, key: str) -> list:
    from skymesh.wire.metainfo import DownloadRequest

    async def fetch() -> list:
        client = planet.planet.client()
        try:
            resp = await client.metainfo.download(
                DownloadRequest(bucket=bucket, key=key, segment_limit=64)
            )
            return resp.segments
        finally:
            await client.close()

    return planet.run(fetch())


def test_many_segments_and_an_inline_tail(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="segs")
    data = random_bytes(3 * SEGMENT + 100, seed=3)
    s3.put_object(Bucket="segs", Key="k", Body=data)
    segs = _segments(planet, "segs", "k")
    assert [s.plain_size for s in segs] == [SEGMENT, SEGMENT, SEGMENT, 100]
    assert segs[-1].inline_data is not None and not segs[-1].pieces
    assert all(s.pieces for s in segs[:-1])
    assert s3.get_object(Bucket="segs", Key="k")["Body"].read() == data
    for start, end in [(0, 10), (SEGMENT - 5, SEGMENT + 5), (3 * SEGMENT - 1, 3 * SEGMENT + 99)]:
        got = s3.get_object(Bucket="segs", Key="k", Range=f"bytes={start}-{end}")
        assert got["Body"].read() == data[start : end + 1]


def test_reuploaded_part_gets_a_fresh_key(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="parts")
    uid = s3.create_multipart_upload(Bucket="parts", Key="mp")["UploadId"]
    first = random_bytes(5 * 1024 * 1024, seed=1)
    second = random_bytes(5 * 1024 * 1024, seed=2)
    tail = b"tail"
    s3.upload_part(Bucket="parts", Key="mp", UploadId=uid, PartNumber=1, Body=first)
    # the same part again, other bytes: it replaces the first upload of part 1
    e1 = s3.upload_part(Bucket="parts", Key="mp", UploadId=uid, PartNumber=1, Body=second)["ETag"]
    e2 = s3.upload_part(Bucket="parts", Key="mp", UploadId=uid, PartNumber=2, Body=tail)["ETag"]
    s3.complete_multipart_upload(
        Bucket="parts",
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert e1 == f'"{hashlib.md5(second).hexdigest()}"'
    assert s3.get_object(Bucket="parts", Key="mp")["Body"].read() == second + tail
    segs = _segments(planet, "parts", "mp")
    salts = {s.key_salt for s in segs}
    assert len(salts) == 2 and b"" not in salts  # one fresh key salt per part upload
    assert segs[-1].inline_data is not None


def test_region_safety_counts_every_region() -> None:
    assert region_safe(["a"] * 4 + ["b"] * 4 + ["c"] * 4, 8)
    assert not region_safe(["a"] * 6 + ["b"] * 6, 8)  # two regions only: losing one leaves 6
    assert not region_safe(["a"] * 6 + ["b"] * 6 + ["c"] * 2, 9)
    assert region_safe(["a"] * 5 + ["b"] * 5 + ["c"] * 4, 8)
