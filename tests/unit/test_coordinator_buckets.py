"""Buckets, API keys and tenancy: a project sees and touches only its own buckets."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from skymesh.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.base import Empty
from skymesh.wire.metainfo import (
    BeginUploadRequest,
    BucketInfo,
    BucketRequest,
    CodecParams,
    CommitSegmentRequest,
    CreateBucketRequest,
    DownloadRequest,
    ListObjectsRequest,
    ListUploadsRequest,
    ObjectRequest,
    PutInlineRequest,
    RegisterAccessKeyRequest,
)
from tests.unit.test_coordinator_support import running


def put_empty(bucket: str, key: str) -> PutInlineRequest:
    return PutInlineRequest(
        bucket=bucket, key=key, size=0, etag="e", encrypted_key=b"", encrypted_metadata=b""
    )


async def test_bucket_lifecycle_and_errors(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.add_nodes(["eu-west"], per_region=1)  # "eu": a location constraint with nodes
        made = await h.client.send(
            routes.CREATE_BUCKET, CreateBucketRequest(name="b-one", region="eu")
        )
        assert made == BucketInfo(name="b-one", created_at=h.clock.now, region="eu")
        await h.create_bucket("a.two")
        assert await h.client.send(routes.GET_BUCKET, BucketRequest(name="b-one")) == made
        listed = await h.client.send(routes.LIST_BUCKETS, None)
        assert [b.name for b in listed.buckets] == ["a.two", "b-one"]

        with pytest.raises(Conflict) as e:
            await h.create_bucket("b-one")
        assert (e.value.code, e.value.status) == ("BucketAlreadyOwnedByYou", 409)
        for bad in ["ab", "x" * 64, "Upper", "under_score", "spa ce", "ünï"]:
            with pytest.raises(BadRequest) as invalid:
                await h.create_bucket(bad)
            assert invalid.value.code == "InvalidBucketName"
        with pytest.raises(NotFound) as missing:
            await h.client.send(routes.GET_BUCKET, BucketRequest(name="nope"))
        assert missing.value.code == "NoSuchBucket"
        with pytest.raises(NotFound) as missing:
            await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket="nope", key="k"))
        assert missing.value.code == "NoSuchBucket"

        await h.client.send(routes.PUT_INLINE, put_empty("b-one", "k"))
        with pytest.raises(Conflict) as e:
            await h.client.send(routes.DELETE_BUCKET, BucketRequest(name="b-one"))
        assert e.value.code == "BucketNotEmpty"
        await h.client.send(routes.DELETE_OBJECT, ObjectRequest(bucket="b-one", key="k"))
        # Pending uploads do not keep a bucket alive: they go with it.
        upload = await h.client.send(
            routes.BEGIN_UPLOAD,
            BeginUploadRequest(bucket="b-one", key="u", encrypted_key=b"", encrypted_metadata=b""),
        )
        assert upload.upload_id
        assert await h.client.send(routes.DELETE_BUCKET, BucketRequest(name="b-one")) == Empty()
        with pytest.raises(NotFound):
            await h.client.send(routes.GET_BUCKET, BucketRequest(name="b-one"))
        # The name is free again.
        await h.create_bucket("b-one")
        uploads = await h.client.send(routes.LIST_UPLOADS, ListUploadsRequest(bucket="b-one"))
        assert uploads.uploads == []


async def test_codec_params(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url, inline_threshold=1000) as h:
        params = await h.client.send(routes.CODEC, None)
        cfg = h.service.config
        assert params == CodecParams(
            max_segment_size=cfg.max_segment_size, inline_threshold=1000, block_size=cfg.block_size
        )


async def test_api_keys(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        for header in [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}]:
            with pytest.raises(Unauthorized):
                await RpcClient(h.service.url, h.session, header).send(routes.LIST_BUCKETS, None)
        wrong = h.project.api_key[:-2] + ("xy" if not h.project.api_key.endswith("xy") else "zz")
        for key in [wrong, "smk_nothing_here", "garbage", h.project.api_key + "x"]:
            with pytest.raises(Unauthorized):
                await RpcClient(h.service.url, h.session, {"Authorization": f"Bearer {key}"}).send(
                    routes.LIST_BUCKETS, None
                )
        # the admin token is not a project key
        with pytest.raises(Unauthorized):
            await h.admin.send(routes.LIST_BUCKETS, None)
        # access keys: idempotent for the owner, refused for another project
        req = RegisterAccessKeyRequest(access_key_id="AKIDEXAMPLE")
        assert await h.client.send(routes.REGISTER_ACCESS_KEY, req) == Empty()
        assert await h.client.send(routes.REGISTER_ACCESS_KEY, req) == Empty()
        other = await h.new_project("beta")
        with pytest.raises(Conflict):
            await other.send(routes.REGISTER_ACCESS_KEY, req)


async def expect_denied(call: Awaitable[Any]) -> None:
    with pytest.raises(Forbidden) as e:
        await call
    assert (e.value.code, e.value.status) == ("AccessDenied", 403)


async def test_tenancy(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.create_bucket("alpha-data")
        await h.client.send(routes.PUT_INLINE, put_empty("alpha-data", "secret"))
        b = await h.new_project("beta")

        with pytest.raises(Conflict) as e:
            await h.create_bucket("alpha-data", b)
        assert e.value.code == "BucketAlreadyExists"
        assert (await b.send(routes.LIST_BUCKETS, None)).buckets == []
        key = ObjectRequest(bucket="alpha-data", key="secret")
        await expect_denied(b.send(routes.GET_BUCKET, BucketRequest(name="alpha-data")))
        await expect_denied(b.send(routes.DELETE_BUCKET, BucketRequest(name="alpha-data")))
        await expect_denied(b.send(routes.HEAD_OBJECT, key))
        await expect_denied(
            b.send(routes.DOWNLOAD, DownloadRequest(bucket="alpha-data", key="secret"))
        )
        await expect_denied(b.send(routes.LIST_OBJECTS, ListObjectsRequest(bucket="alpha-data")))
        await expect_denied(b.send(routes.DELETE_OBJECT, key))
        await expect_denied(b.send(routes.PUT_INLINE, put_empty("alpha-data", "secret")))
        await expect_denied(
            b.send(
                routes.BEGIN_UPLOAD,
                BeginUploadRequest(
                    bucket="alpha-data", key="x", encrypted_key=b"", encrypted_metadata=b""
                ),
            )
        )
        await expect_denied(b.send(routes.LIST_UPLOADS, ListUploadsRequest(bucket="alpha-data")))
        # A's object is untouched.
        assert (await h.client.send(routes.HEAD_OBJECT, key)).key == "secret"


async def test_pending_streams_belong_to_their_project(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.add_nodes(["eu", "us", "ap"], 2)
        await h.create_bucket("alpha-data")
        begun = await h.begin("alpha-data", "k", 1000)
        b = await h.new_project("beta")
        await h.create_bucket("beta-data", b)
        seg = h.store(begun.placement, 1000)
        with pytest.raises(NotFound) as e:
            await b.send(
                routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
            )
        assert e.value.code == "NoSuchUpload"


async def test_keys_are_checked(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.create_bucket("keys")
        for key, code in [
            ("", "InvalidArgument"),
            ("a" * 1025, "KeyTooLongError"),
            ("a\x00b", "InvalidArgument"),
        ]:
            with pytest.raises(BadRequest) as e:
                await h.client.send(routes.PUT_INLINE, put_empty("keys", key))
            assert e.value.code == code
        long_ok = "é" * 512  # 1024 bytes
        info = await h.client.send(routes.PUT_INLINE, put_empty("keys", long_ok))
        assert info.key == long_ok
