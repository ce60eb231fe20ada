"""Object and bucket tagging through boto3: round trips, S3's limits and error codes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _error(call: Any) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return _code(e.value)


def _tags(d: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def _as_dict(resp: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resp["TagSet"]}


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="tags")
    return "tags"


def test_object_tagging_round_trip(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Metadata={"m": "1"})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    tags = {"project": "blue", "empty": "", "ünï cødé": "a+b=c/d:e@f_g.h-i"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tags(tags))
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == tags
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 3
    # the object itself is untouched: same bytes, metadata, ETag
    assert got["Body"].read() == b"data" and got["Metadata"] == {"m": "1"}
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_tagging_header_on_put(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="h", Body=b"x", Tagging="a=1&b=two%20words&c=")
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="h")) == {
        "a": "1",
        "b": "two words",
        "c": "",
    }
    assert (
        s3.head_object(Bucket=bucket, Key="h")["ResponseMetadata"]["HTTPHeaders"][
            "x-amz-tagging-count"
        ]
        == "3"
    )
    # a new version starts with the tags its PUT gives
    s3.put_object(Bucket=bucket, Key="h", Body=b"y")
    assert s3.get_object_tagging(Bucket=bucket, Key="h")["TagSet"] == []
    # multipart uploads take the header too
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="x=y")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="mp")) == {"x": "y"}


def test_tagging_header_key_without_equals(s3: S3Client, bucket: str) -> None:
    # S3 takes a key without "=" as a tag with an empty value
    s3.put_object(Bucket=bucket, Key="noeq", Body=b"x", Tagging="k1&k2=v2")
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="noeq")) == {"k1": "", "k2": "v2"}


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},  # more than 10
        {"k" * 129: "v"},  # key over 128
        {"k": "v" * 257},  # value over 256
        {"aws:reserved": "v"},
        {"bad<char>": "v"},
    ],
)
def test_object_tag_limits(s3: S3Client, bucket: str, tags: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="lim", Body=b"x")
    assert _error(lambda: s3.put_object_tagging(Bucket=bucket, Key="lim", Tagging=_tags(tags))) == (
        "InvalidTag"
    )


def test_object_tag_edges(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="edge", Body=b"x")
    # exactly at the limits: 10 tags, 128-unit key, 256-unit value; "𝐀" (U+1D400) is 2 UTF-16 units
    tags = {f"k{i}": "v" for i in range(9)}
    tags["𝐀" * 64] = "é" * 256
    s3.put_object_tagging(Bucket=bucket, Key="edge", Tagging=_tags(tags))
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="edge")) == tags
    too_long = {"𝐀" * 64 + "a": "v"}
    assert (
        _error(lambda: s3.put_object_tagging(Bucket=bucket, Key="edge", Tagging=_tags(too_long)))
        == "InvalidTag"
    )
    dup = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    assert _error(lambda: s3.put_object_tagging(Bucket=bucket, Key="edge", Tagging=dup)) == (
        "InvalidTag"
    )
    assert (
        _error(lambda: s3.put_object(Bucket=bucket, Key="edge2", Body=b"x", Tagging="a=1&a=2"))
        == "InvalidTag"
    )
    # an empty key (boto3 refuses to send one in XML; the header form can)
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="edge2", Body=b"x", Tagging="=v")) == (
        "InvalidTag"
    )
    assert _error(lambda: s3.get_object_tagging(Bucket=bucket, Key="missing")) == "NoSuchKey"
    assert (
        _error(
            lambda: s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=_tags({"a": "b"}))
        )
        == "NoSuchKey"
    )


def test_bucket_tagging(s3: S3Client) -> None:
    s3.create_bucket(Bucket="btags")
    assert _error(lambda: s3.get_bucket_tagging(Bucket="btags")) == "NoSuchTagSet"
    tags = {f"k{i}": f"v{i}" for i in range(50)}
    s3.put_bucket_tagging(Bucket="btags", Tagging=_tags(tags))
    assert _as_dict(s3.get_bucket_tagging(Bucket="btags")) == tags
    tags["k50"] = "one too many"
    assert _error(lambda: s3.put_bucket_tagging(Bucket="btags", Tagging=_tags(tags))) == (
        "InvalidTag"
    )
    s3.delete_bucket_tagging(Bucket="btags")
    assert _error(lambda: s3.get_bucket_tagging(Bucket="btags")) == "NoSuchTagSet"
    assert _error(lambda: s3.get_bucket_tagging(Bucket="no-such-bucket-tags")) == "NoSuchBucket"


def test_malformed_tagging_xml(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="xml", Body=b"x")

    def send(params: Any, **kwargs: Any) -> None:
        params["body"] = b"<Tagging><NotATagSet/></Tagging>"

    s3.meta.events.register("before-call.s3.PutObjectTagging", send)
    try:
        assert (
            _error(
                lambda: s3.put_object_tagging(Bucket=bucket, Key="xml", Tagging=_tags({"a": "b"}))
            )
            == "MalformedXML"
        )
    finally:
        s3.meta.events.unregister("before-call.s3.PutObjectTagging", send)


def test_metadata_update_needs_the_version_it_read(
    planet: PlanetThread, s3: S3Client, bucket: str
) -> None:
    from skymesh import errors
    from skymesh.wire.metainfo import UpdateObjectMetadataRequest

    s3.put_object(Bucket=bucket, Key="race", Body=b"1")

    async def head() -> Any:
        async with planet.planet.client() as client:
            return await client.metainfo.head_object(bucket, "race")

    async def update(stale: Any) -> Any:
        async with planet.planet.client() as client:
            req = UpdateObjectMetadataRequest(
                bucket=bucket,
                key="race",
                version_id=stale.version_id,
                encrypted_metadata=stale.encrypted_metadata,
            )
            return await client.metainfo.update_metadata(req)

    stale = planet.run(head())
    s3.put_object(Bucket=bucket, Key="race", Body=b"2", Tagging="new=1")
    with pytest.raises(errors.NotFound) as e:
        planet.run(update(stale))
    assert e.value.code == "NoSuchVersion"
    # the newer version keeps its own metadata
    assert _as_dict(s3.get_object_tagging(Bucket=bucket, Key="race")) == {"new": "1"}
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == b"2"
