"""Bucket policies, Public Access Block and ownership controls through boto3.

Policies are evaluated on every request with the ACLs, as S3 does: an explicit
Deny refuses even the owner; another project or an anonymous caller gets what a
policy Allow or the ACL grants. The planet's gateway speaks plain HTTP from
127.0.0.1, which the aws:SecureTransport and aws:SourceIp tests rely on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from skymesh.config import Credential
from skymesh.gateway.s3 import public
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return str(e.value.response["Error"]["Code"])


def _policy(bucket: str, *statements: dict[str, Any]) -> str:
    for s in statements:
        s.setdefault("Effect", "Allow")
        s.setdefault("Principal", "*")
        s.setdefault("Resource", f"arn:aws:s3:::{bucket}/*")
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def anon(planet: PlanetThread) -> S3Client:
    return planet.boto3(signature_version=UNSIGNED)


@pytest.fixture(scope="module")
def other_cred(planet: PlanetThread) -> Credential:
    cred = planet.run(planet.planet.create_credential("policy-other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(cred)
    return cred


@pytest.fixture(scope="module")
def other(planet: PlanetThread, other_cred: Credential) -> S3Client:
    return planet.boto3(other_cred)


def test_policy_round_trip_and_errors(s3: S3Client) -> None:
    s3.create_bucket(Bucket="pol-crud")
    assert _code(lambda: s3.get_bucket_policy(Bucket="pol-crud")) == "NoSuchBucketPolicy"
    assert _code(lambda: s3.get_bucket_policy_status(Bucket="pol-crud")) == "NoSuchBucketPolicy"
    text = _policy("pol-crud", {"Sid": "read", "Action": "s3:GetObject"})
    s3.put_bucket_policy(Bucket="pol-crud", Policy=text)
    assert json.loads(s3.get_bucket_policy(Bucket="pol-crud")["Policy"]) == json.loads(text)
    assert s3.get_bucket_policy_status(Bucket="pol-crud")["PolicyStatus"]["IsPublic"] is True
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket="pol-crud", Policy=_policy("elsewhere", {"Action": "s3:*"}))
    assert e.value.response["Error"]["Code"] == "MalformedPolicy"
    assert e.value.response["Error"]["Message"] == "Policy has invalid resource"
    assert _code(lambda: s3.put_bucket_policy(Bucket="pol-crud", Policy="{")) == "MalformedPolicy"
    s3.delete_bucket_policy(Bucket="pol-crud")
    assert _code(lambda: s3.get_bucket_policy(Bucket="pol-crud")) == "NoSuchBucketPolicy"


def test_explicit_deny_binds_the_owner(s3: S3Client) -> None:
    bucket = "pol-deny"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    no_tls = {
        "Effect": "Deny",
        "Action": "s3:GetObject",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    no_delete = {
        "Effect": "Deny",
        "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/keep",
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, no_tls, no_delete))
    # plain HTTP: the owner's own read is refused; its other requests are not
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="k")) == "AccessDenied"
    assert _code(lambda: s3.delete_object(Bucket=bucket, Key="keep")) == "AccessDenied"
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}, {"Key": "keep"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["k"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("keep", "AccessDenied")]
    # the owner may always read and remove its policy
    assert "Deny" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="keep")


def test_grant_to_another_project_by_canonical_id(
    s3: S3Client, other: S3Client, other_cred: Credential
) -> None:
    bucket = "pol-cross"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared/a", Body=b"for you")
    s3.put_object(Bucket=bucket, Key="mine/b", Body=b"not for you")
    owner_id = s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]
    assert _code(lambda: other.get_object(Bucket=bucket, Key="shared/a")) == "AccessDenied"
    grant = {"Principal": {"AWS": [other_cred.project_id]}}
    policy = _policy(
        bucket,
        {
            **grant,
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
        },
        {
            "Principal": {"AWS": f"arn:aws:iam::{other_cred.project_id}:root"},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    assert other.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"for you"
    other.put_object(Bucket=bucket, Key="shared/new", Body=b"from them")
    assert s3.get_object(Bucket=bucket, Key="shared/new")["Body"].read() == b"from them"
    assert _code(lambda: other.get_object(Bucket=bucket, Key="mine/b")) == "AccessDenied"
    assert _code(lambda: other.delete_object(Bucket=bucket, Key="shared/a")) == "AccessDenied"
    # a copy needs s3:GetObject on its source as well
    other.copy_object(
        Bucket=bucket, Key="shared/c", CopySource={"Bucket": bucket, "Key": "shared/a"}
    )
    assert s3.get_object(Bucket=bucket, Key="shared/c")["Body"].read() == b"for you"
    stolen = {"Bucket": bucket, "Key": "mine/b"}
    copy = lambda: other.copy_object(Bucket=bucket, Key="shared/d", CopySource=stolen)  # noqa: E731
    assert _code(copy) == "AccessDenied"
    s3.delete_object(Bucket=bucket, Key="shared/c")
    listing = other.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert [o["Key"] for o in listing["Contents"]] == ["mine/b", "shared/a", "shared/new"]
    assert all("Owner" not in o for o in listing["Contents"])  # the owner's id stays hidden
    assert owner_id not in json.dumps(listing, default=str)
    # the policy itself is the owner's alone
    assert _code(lambda: other.get_bucket_policy(Bucket=bucket)) == "AccessDenied"


def test_anonymous_listing_by_prefix_and_source_ip(s3: S3Client, anon: S3Client) -> None:
    bucket = "pol-anon"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pub/a", Body=b"open")
    s3.put_object(Bucket=bucket, Key="priv/b", Body=b"closed")
    policy = _policy(
        bucket,
        {
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": "pub/*"}},
        },
        {
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/pub/*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}},
        },
        {
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/priv/*",
            "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    listed = anon.list_objects_v2(Bucket=bucket, Prefix="pub/")
    assert [o["Key"] for o in listed["Contents"]] == ["pub/a"]
    assert _code(lambda: anon.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert _code(lambda: anon.list_objects_v2(Bucket=bucket, Prefix="priv/")) == "AccessDenied"
    assert anon.get_object(Bucket=bucket, Key="pub/a")["Body"].read() == b"open"
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="priv/b")) == "AccessDenied"
    assert _code(lambda: anon.put_object(Bucket=bucket, Key="pub/x", Body=b"")) == "AccessDenied"


def test_public_access_block(s3: S3Client, anon: S3Client) -> None:
    bucket = "pol-pab"
    s3.create_bucket(Bucket=bucket)
    assert (
        _code(lambda: s3.get_public_access_block(Bucket=bucket))
        == "NoSuchPublicAccessBlockConfiguration"
    )
    s3.put_object(Bucket=bucket, Key="open", Body=b"x", ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="open")["Body"].read() == b"x"
    flags = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=flags)
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == flags
    # BlockPublicAcls
    put = lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")  # noqa: E731
    assert _code(put) == "AccessDenied"
    assert _code(lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read")) == "AccessDenied"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="private")
    # IgnorePublicAcls
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="open")) == "AccessDenied"
    # BlockPublicPolicy
    public = _policy(bucket, {"Action": "s3:GetObject"})
    assert _code(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=public)) == "AccessDenied"
    # RestrictPublicBuckets: a stored public policy grants nobody outside the owner
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            **flags,
            "BlockPublicPolicy": False,
            "IgnorePublicAcls": False,
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            **flags,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="k")) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    s3.delete_public_access_block(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="open")["Body"].read() == b"x"


def test_bucket_owner_enforced(s3: S3Client, anon: S3Client) -> None:
    bucket = "pol-owner"
    s3.create_bucket(Bucket=bucket)
    assert (
        _code(lambda: s3.get_bucket_ownership_controls(Bucket=bucket))
        == "OwnershipControlsNotFoundError"
    )
    s3.put_object(Bucket=bucket, Key="was-public", Body=b"x", ACL="public-read")
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=enforced)
    got = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert got == enforced
    put = lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")  # noqa: E731
    assert _code(put) == "AccessControlListNotSupported"
    assert _code(lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read")) == (
        "AccessControlListNotSupported"
    )
    assert _code(lambda: s3.put_object_acl(Bucket=bucket, Key="was-public", ACL="public-read")) == (
        "AccessControlListNotSupported"
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    # ACLs are disabled: the old public-read grants nothing and reads as the owner's alone
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="was-public")) == "AccessDenied"
    grants = s3.get_object_acl(Bucket=bucket, Key="was-public")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="was-public")["Body"].read() == b"x"
    # a public bucket ACL and BucketOwnerEnforced do not go together
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert (
        _code(lambda: s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=enforced))
        == "InvalidBucketAclWithObjectOwnership"
    )


def test_missing_keys_are_hidden_without_list_permission(s3: S3Client, anon: S3Client) -> None:
    bucket = "pol-missing"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {"Action": "s3:GetObject"}))
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="nope")) == "AccessDenied"
    listing = {"Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {"Action": "s3:GetObject"}, listing))
    assert _code(lambda: anon.get_object(Bucket=bucket, Key="nope")) == "NoSuchKey"


def test_changes_through_another_gateway_are_seen_within_the_cache_time(
    planet: PlanetThread, s3: S3Client, anon: S3Client
) -> None:
    """The owner's requests reuse the cached configuration (no coordinator call each),
    and a policy written past this gateway is enforced once the cache expires."""
    bucket = "pol-fresh"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    gateway = planet.planet.gateway
    assert gateway is not None and gateway.context is not None
    directory = gateway.context.directory
    assert directory is not None and planet.planet.credential is not None
    clock = directory.clock
    now = clock()
    try:
        directory.clock = lambda: now  # frozen: the cache holds whatever the machine's speed
        searches = directory.searches
        for _ in range(5):
            s3.head_object(Bucket=bucket, Key="k")
        assert directory.searches - searches <= 1
        # another gateway (here: the owner's metainfo client directly) denies reads
        deny = _policy(bucket, {"Effect": "Deny", "Action": "s3:GetObject"})
        client = gateway.context.clients[planet.planet.credential.access_key_id]
        planet.run(client.metainfo.put_bucket_policy(bucket, deny))
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"  # cached
        directory.clock = lambda: now + public.CACHE_TTL
        assert _code(lambda: s3.get_object(Bucket=bucket, Key="k")) == "AccessDenied"
    finally:
        directory.clock = clock
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
