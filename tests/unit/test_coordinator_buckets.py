"""Buckets, API keys and tenancy: a project sees and touches only its own buckets."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from skymesh.rpc import RpcClient
from skymesh.wire.messages import (
    BeginUploadRequest,
    BucketInfo,
    BucketList,
    BucketRequest,
    CodecParams,
    CodecParamsRequest,
    CommitSegmentRequest,
    CreateBucketRequest,
    DeleteObjectResponse,
    DownloadRequest,
    DownloadResponse,
    ListObjectsRequest,
    ListObjectsResponse,
    ListUploadsRequest,
    ListUploadsResponse,
    ObjectInfo,
    ObjectRequest,
    PutInlineRequest,
    RegisterAccessKeyRequest,
    UploadInfo,
)
from tests.unit.test_coordinator_support import running


def put_empty(bucket: str, key: str) -> PutInlineRequest:
    return PutInlineRequest(
        bucket=bucket, key=key, size=0, etag="e", encrypted_key=b"", encrypted_metadata=b""
    )


async def test_bucket_lifecycle_and_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.add_nodes(["eu-west"], per_region=1)  # "eu": a location constraint with nodes
        made = await h.client.call(
            "/v1/buckets/create", CreateBucketRequest(name="b-one", region="eu"), BucketInfo
        )
        assert made == BucketInfo(name="b-one", created_at=h.clock.now, region="eu")
        await h.create_bucket("a.two")
        assert (
            await h.client.call("/v1/buckets/get", BucketRequest(name="b-one"), BucketInfo) == made
        )
        listed = await h.client.call("/v1/buckets/list", None, BucketList)
        assert [b.name for b in listed.buckets] == ["a.two", "b-one"]

        with pytest.raises(Conflict) as e:
            await h.create_bucket("b-one")
        assert (e.value.code, e.value.status) == ("BucketAlreadyOwnedByYou", 409)
        for bad in ["ab", "x" * 64, "Upper", "under_score", "spa ce", "ünï"]:
            with pytest.raises(BadRequest) as e:
                await h.create_bucket(bad)
            assert e.value.code == "InvalidBucketName"
        with pytest.raises(NotFound) as e:
            await h.client.call("/v1/buckets/get", BucketRequest(name="nope"), BucketInfo)
        assert e.value.code == "NoSuchBucket"
        with pytest.raises(NotFound) as e:
            await h.client.call(
                "/v1/objects/head", ObjectRequest(bucket="nope", key="k"), ObjectInfo
            )
        assert e.value.code == "NoSuchBucket"

        await h.client.call("/v1/objects/put-inline", put_empty("b-one", "k"), ObjectInfo)
        with pytest.raises(Conflict) as e:
            await h.client.call("/v1/buckets/delete", BucketRequest(name="b-one"), dict)
        assert e.value.code == "BucketNotEmpty"
        await h.client.call(
            "/v1/objects/delete", ObjectRequest(bucket="b-one", key="k"), DeleteObjectResponse
        )
        # Pending uploads do not keep a bucket alive: they go with it.
        upload = await h.client.call(
            "/v1/uploads/begin",
            BeginUploadRequest(bucket="b-one", key="u", encrypted_key=b"", encrypted_metadata=b""),
            UploadInfo,
        )
        assert upload.upload_id
        assert await h.client.call("/v1/buckets/delete", BucketRequest(name="b-one"), dict) == {}
        with pytest.raises(NotFound):
            await h.client.call("/v1/buckets/get", BucketRequest(name="b-one"), BucketInfo)
        # The name is free again.
        await h.create_bucket("b-one")
        uploads = await h.client.call(
            "/v1/uploads/list", ListUploadsRequest(bucket="b-one"), ListUploadsResponse
        )
        assert uploads.uploads == []


async def test_codec_params(tmp_path: Path) -> None:
    async with running(tmp_path, inline_threshold=1000) as h:
        params = await h.client.call("/v1/codec", CodecParamsRequest(), CodecParams)
        cfg = h.service.config
        assert params == CodecParams(
            max_segment_size=cfg.max_segment_size, inline_threshold=1000, block_size=cfg.block_size
        )


async def test_api_keys(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        for header in [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}]:
            with pytest.raises(Unauthorized):
                await RpcClient(h.service.url, h.session, header).call(
                    "/v1/buckets/list", None, BucketList
                )
        wrong = h.project.api_key[:-2] + ("xy" if not h.project.api_key.endswith("xy") else "zz")
        for key in [wrong, "smk_nothing_here", "garbage", h.project.api_key + "x"]:
            with pytest.raises(Unauthorized):
                await RpcClient(h.service.url, h.session, {"Authorization": f"Bearer {key}"}).call(
                    "/v1/buckets/list", None, BucketList
                )
        # the admin token is not a project key
        with pytest.raises(Unauthorized):
            await h.admin.call("/v1/buckets/list", None, BucketList)
        # access keys: idempotent for the owner, refused for another project
        req = RegisterAccessKeyRequest(access_key_id="AKIDEXAMPLE")
        assert await h.client.call("/v1/projects/access-keys", req, dict) == {}
        assert await h.client.call("/v1/projects/access-keys", req, dict) == {}
        other = await h.new_project("beta")
        with pytest.raises(Conflict):
            await other.call("/v1/projects/access-keys", req, dict)


async def expect_denied(call: object) -> None:
    with pytest.raises(Forbidden) as e:
        await call  # type: ignore[misc]
    assert (e.value.code, e.value.status) == ("AccessDenied", 403)


async def test_tenancy(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.create_bucket("alpha-data")
        await h.client.call("/v1/objects/put-inline", put_empty("alpha-data", "secret"), ObjectInfo)
        b = await h.new_project("beta")

        with pytest.raises(Conflict) as e:
            await h.create_bucket("alpha-data", b)
        assert e.value.code == "BucketAlreadyExists"
        assert (await b.call("/v1/buckets/list", None, BucketList)).buckets == []
        key = ObjectRequest(bucket="alpha-data", key="secret")
        await expect_denied(b.call("/v1/buckets/get", BucketRequest(name="alpha-data"), BucketInfo))
        await expect_denied(b.call("/v1/buckets/delete", BucketRequest(name="alpha-data"), dict))
        await expect_denied(b.call("/v1/objects/head", key, ObjectInfo))
        await expect_denied(
            b.call(
                "/v1/objects/download",
                DownloadRequest(bucket="alpha-data", key="secret"),
                DownloadResponse,
            )
        )
        await expect_denied(
            b.call("/v1/objects/list", ListObjectsRequest(bucket="alpha-data"), ListObjectsResponse)
        )
        await expect_denied(b.call("/v1/objects/delete", key, DeleteObjectResponse))
        await expect_denied(
            b.call("/v1/objects/put-inline", put_empty("alpha-data", "secret"), ObjectInfo)
        )
        await expect_denied(
            b.call(
                "/v1/uploads/begin",
                BeginUploadRequest(
                    bucket="alpha-data", key="x", encrypted_key=b"", encrypted_metadata=b""
                ),
                UploadInfo,
            )
        )
        await expect_denied(
            b.call("/v1/uploads/list", ListUploadsRequest(bucket="alpha-data"), ListUploadsResponse)
        )
        # A's object is untouched.
        assert (await h.client.call("/v1/objects/head", key, ObjectInfo)).key == "secret"


async def test_pending_streams_belong_to_their_project(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.add_nodes(["eu", "us", "ap"], 2)
        await h.create_bucket("alpha-data")
        begun = await h.begin("alpha-data", "k", 1000)
        b = await h.new_project("beta")
        await h.create_bucket("beta-data", b)
        seg = h.store(begun.placement, 1000)
        with pytest.raises(NotFound) as e:
            await b.call(
                "/v1/segments/commit",
                CommitSegmentRequest(stream_id=begun.stream_id, segment=seg),
                dict,
            )
        assert e.value.code == "NoSuchUpload"


async def test_keys_are_checked(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.create_bucket("keys")
        for key, code in [
            ("", "InvalidArgument"),
            ("a" * 1025, "KeyTooLongError"),
            ("a\x00b", "InvalidArgument"),
        ]:
            with pytest.raises(BadRequest) as e:
                await h.client.call("/v1/objects/put-inline", put_empty("keys", key), ObjectInfo)
            assert e.value.code == code
        long_ok = "é" * 512  # 1024 bytes
        info = await h.client.call("/v1/objects/put-inline", put_empty("keys", long_ok), ObjectInfo)
        assert info.key == long_ok
