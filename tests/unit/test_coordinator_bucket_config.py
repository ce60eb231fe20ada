"""Coordinator routes for bucket ACLs, tags and CORS, and for replacing object metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import BadRequest, Forbidden, NotFound
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    BucketConfig,
    BucketRequest,
    CorsRule,
    CreateBucketRequest,
    ObjectRequest,
    PublicAccessBlock,
    PutBucketAclRequest,
    PutBucketCorsRequest,
    PutBucketOwnershipRequest,
    PutBucketPolicyRequest,
    PutBucketTaggingRequest,
    PutInlineRequest,
    PutPublicAccessBlockRequest,
    Tag,
    UpdateObjectMetadataRequest,
)
from tests.unit.test_coordinator_support import running

RULE = CorsRule(allowed_origins=["*"], allowed_methods=["GET"])


async def test_bucket_config_round_trip_and_caps(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        c = h.client
        await c.send(routes.CREATE_BUCKET, CreateBucketRequest(name="cfg", acl="public-read"))
        got = await c.send(routes.BUCKET_CONFIG, BucketRequest(name="cfg"))
        assert got == BucketConfig(name="cfg", acl="public-read", tags=None, cors=None)
        tags = [Tag(key="a", value="1"), Tag(key="b", value="")]
        await c.send(routes.PUT_BUCKET_TAGGING, PutBucketTaggingRequest(name="cfg", tags=tags))
        await c.send(routes.PUT_BUCKET_CORS, PutBucketCorsRequest(name="cfg", rules=[RULE]))
        got = await c.send(routes.PUT_BUCKET_ACL, PutBucketAclRequest(name="cfg", acl="private"))
        assert got == BucketConfig(name="cfg", acl="private", tags=tags, cors=[RULE])
        # an empty tag set is a tag set; null deletes
        got = await c.send(routes.PUT_BUCKET_TAGGING, PutBucketTaggingRequest(name="cfg", tags=[]))
        assert got.tags == []
        got = await c.send(routes.PUT_BUCKET_TAGGING, PutBucketTaggingRequest(name="cfg"))
        got = await c.send(routes.PUT_BUCKET_CORS, PutBucketCorsRequest(name="cfg"))
        assert (got.tags, got.cors) == (None, None)

        for path, req, code in [
            (
                "/v1/buckets/put-acl",
                PutBucketAclRequest(name="cfg", acl="public-read-write"),
                "InvalidArgument",
            ),
            ("/v1/buckets/create", CreateBucketRequest(name="cfg2", acl="nope"), "InvalidArgument"),
            (
                "/v1/buckets/put-tagging",
                PutBucketTaggingRequest(name="cfg", tags=[Tag(key="k", value="v")] * 2),
                "InvalidTag",
            ),
            (
                "/v1/buckets/put-tagging",
                PutBucketTaggingRequest(
                    name="cfg", tags=[Tag(key=str(i), value="") for i in range(51)]
                ),
                "InvalidTag",
            ),
            (
                "/v1/buckets/put-tagging",
                PutBucketTaggingRequest(name="cfg", tags=[Tag(key="", value="")]),
                "InvalidTag",
            ),
            ("/v1/buckets/put-cors", PutBucketCorsRequest(name="cfg", rules=[]), "MalformedXML"),
            (
                "/v1/buckets/put-cors",
                PutBucketCorsRequest(name="cfg", rules=[RULE] * 101),
                "MalformedXML",
            ),
            (
                "/v1/buckets/put-cors",
                PutBucketCorsRequest(
                    name="cfg", rules=[CorsRule(allowed_origins=["x" * 70000], allowed_methods=[])]
                ),
                "MaxMessageLengthExceeded",
            ),
        ]:
            with pytest.raises(BadRequest) as e:
                await c.call(path, req, dict)
            assert e.value.code == code, (path, req)
        with pytest.raises(NotFound) as nf:
            await c.send(routes.BUCKET_CONFIG, BucketRequest(name="cfg2"))
        assert nf.value.code == "NoSuchBucket"

        other = await h.new_project("other")
        for path, req in [
            ("/v1/buckets/config", BucketRequest(name="cfg")),
            ("/v1/buckets/put-acl", PutBucketAclRequest(name="cfg", acl="public-read")),
            ("/v1/buckets/put-tagging", PutBucketTaggingRequest(name="cfg")),
            ("/v1/buckets/put-cors", PutBucketCorsRequest(name="cfg")),
        ]:
            with pytest.raises(Forbidden) as f:
                await other.call(path, req, dict)
            assert f.value.code == "AccessDenied"


async def test_update_metadata_only_on_the_version_read(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.create_bucket("meta")

        def put(blob: bytes) -> PutInlineRequest:
            return PutInlineRequest(
                bucket="meta", key="k", size=0, etag="e", encrypted_key=b"", encrypted_metadata=blob
            )

        first = await h.client.send(routes.PUT_INLINE, put(b"m1"))

        def update(version: str, blob: bytes) -> UpdateObjectMetadataRequest:
            return UpdateObjectMetadataRequest(
                bucket="meta", key="k", version_id=version, encrypted_metadata=blob
            )

        done = await h.client.send(routes.UPDATE_METADATA, update(first.version_id, b"m2"))
        assert (done.version_id, done.encrypted_metadata) == (first.version_id, b"m2")
        second = await h.client.send(routes.PUT_INLINE, put(b"n1"))
        with pytest.raises(NotFound) as e:
            await h.client.send(routes.UPDATE_METADATA, update(first.version_id, b"old"))
        assert e.value.code == "NoSuchVersion"
        now = await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket="meta", key="k"))
        assert (now.version_id, now.encrypted_metadata) == (second.version_id, b"n1")
        with pytest.raises(BadRequest):
            await h.client.send(routes.UPDATE_METADATA, update("", b"x"))
        with pytest.raises(BadRequest):
            await h.client.send(routes.UPDATE_METADATA, update(second.version_id, b"x" * 17000))
        other = await h.new_project("other-meta")
        with pytest.raises(Forbidden):
            await other.send(routes.UPDATE_METADATA, update(second.version_id, b"x"))


async def test_policy_access_block_and_ownership_round_trip(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        c = h.client
        await c.send(routes.CREATE_BUCKET, CreateBucketRequest(name="pol"))
        got = await c.send(routes.BUCKET_CONFIG, BucketRequest(name="pol"))
        assert (got.policy, got.public_access_block, got.ownership) == (None, None, None)
        text = '{"Statement": []}'
        pab = PublicAccessBlock(block_public_acls=True, restrict_public_buckets=True)
        await c.send(routes.PUT_BUCKET_POLICY, PutBucketPolicyRequest(name="pol", policy=text))
        await c.send(
            routes.PUT_PUBLIC_ACCESS_BLOCK, PutPublicAccessBlockRequest(name="pol", config=pab)
        )
        got = await c.send(
            routes.PUT_BUCKET_OWNERSHIP,
            PutBucketOwnershipRequest(name="pol", ownership="BucketOwnerEnforced"),
        )
        assert (got.policy, got.public_access_block, got.ownership) == (
            text,
            pab,
            "BucketOwnerEnforced",
        )
        await c.send(routes.PUT_BUCKET_POLICY, PutBucketPolicyRequest(name="pol"))
        await c.send(routes.PUT_PUBLIC_ACCESS_BLOCK, PutPublicAccessBlockRequest(name="pol"))
        got = await c.send(routes.PUT_BUCKET_OWNERSHIP, PutBucketOwnershipRequest(name="pol"))
        assert (got.policy, got.public_access_block, got.ownership) == (None, None, None)
        for path, req, code in [
            (
                "/v1/buckets/put-policy",
                PutBucketPolicyRequest(name="pol", policy="x" * (20 * 1024 + 1)),
                "PolicyTooLarge",
            ),
            (
                "/v1/buckets/put-ownership",
                PutBucketOwnershipRequest(name="pol", ownership="Everyone"),
                "MalformedXML",
            ),
        ]:
            with pytest.raises(BadRequest) as e:
                await c.call(path, req, dict)
            assert e.value.code == code
        other = await h.new_project("other")
        with pytest.raises(Forbidden):
            await other.call(
                "/v1/buckets/put-policy", PutBucketPolicyRequest(name="pol", policy=text), dict
            )
