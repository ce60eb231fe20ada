"""Canned ACLs through boto3, and what anonymous callers may read because of them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _error(call: Any) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return _code(e.value)


def _public(grants: list[dict[str, Any]]) -> bool:
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)


@pytest.fixture(scope="module")
def anon(planet: PlanetThread) -> S3Client:
    return planet.boto3(signature_version=UNSIGNED)


def test_bucket_acl_canned_and_policy(s3: S3Client) -> None:
    s3.create_bucket(Bucket="acl-pub", ACL="public-read")
    acl = s3.get_bucket_acl(Bucket="acl-pub")
    owner = acl["Owner"]["ID"]
    assert _public(acl["Grants"])
    assert {"ID": owner, "Type": "CanonicalUser"}.items() <= acl["Grants"][0]["Grantee"].items()
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_bucket_acl(Bucket="acl-pub", ACL="private")
    assert not _public(s3.get_bucket_acl(Bucket="acl-pub")["Grants"])
    # the same through an AccessControlPolicy body
    policy: dict[str, Any] = {
        "Owner": {"ID": owner},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
        ],
    }
    s3.put_bucket_acl(Bucket="acl-pub", AccessControlPolicy=policy)
    assert _public(s3.get_bucket_acl(Bucket="acl-pub")["Grants"])
    policy["Grants"][1]["Permission"] = "WRITE"
    assert _error(lambda: s3.put_bucket_acl(Bucket="acl-pub", AccessControlPolicy=policy)) == (
        "NotImplemented"
    )


def test_unsupported_and_invalid_acls(s3: S3Client) -> None:
    assert _error(lambda: s3.create_bucket(Bucket="acl-rw", ACL="public-read-write")) == (
        "NotImplemented"
    )
    assert _error(lambda: s3.create_bucket(Bucket="acl-rw", ACL="authenticated-read")) == (
        "NotImplemented"
    )
    s3.create_bucket(Bucket="acl-obj")
    assert (
        _error(
            lambda: s3.put_object(
                Bucket="acl-obj", Key="k", Body=b"x", GrantRead="uri=" + ALL_USERS
            )
        )
        == "NotImplemented"
    )
    # the bucket owner owns every object here: bucket-owner-full-control is private
    s3.put_object(Bucket="acl-obj", Key="k", Body=b"x", ACL="bucket-owner-full-control")
    assert not _public(s3.get_object_acl(Bucket="acl-obj", Key="k")["Grants"])
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="acl-rw")  # nothing was created


def test_public_object_read_anonymously(s3: S3Client, anon: S3Client) -> None:
    s3.create_bucket(Bucket="acl-site")
    s3.put_object(Bucket="acl-site", Key="index.html", Body=b"<h1>hi</h1>", ACL="public-read")
    s3.put_object(Bucket="acl-site", Key="secret", Body=b"no")
    assert _public(s3.get_object_acl(Bucket="acl-site", Key="index.html")["Grants"])
    assert anon.get_object(Bucket="acl-site", Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    assert anon.head_object(Bucket="acl-site", Key="index.html")["ContentLength"] == 11
    r = anon.get_object(Bucket="acl-site", Key="index.html", Range="bytes=1-2")
    assert r["Body"].read() == b"h1"
    assert _error(lambda: anon.get_object(Bucket="acl-site", Key="secret")) == "AccessDenied"
    # a private bucket hides which keys exist
    assert _error(lambda: anon.get_object(Bucket="acl-site", Key="nope")) == "AccessDenied"
    assert _error(lambda: anon.list_objects_v2(Bucket="acl-site")) == "AccessDenied"
    # writes are never anonymous
    assert _error(lambda: anon.put_object(Bucket="acl-site", Key="x", Body=b"x")) == (
        "AccessDenied"
    )
    assert _error(lambda: anon.delete_object(Bucket="acl-site", Key="index.html")) == (
        "AccessDenied"
    )
    assert _error(lambda: anon.get_object_acl(Bucket="acl-site", Key="index.html")) == (
        "AccessDenied"
    )
    # revoking takes effect at once: the check is on the version being read
    s3.put_object_acl(Bucket="acl-site", Key="index.html", ACL="private")
    assert _error(lambda: anon.get_object(Bucket="acl-site", Key="index.html")) == "AccessDenied"
    s3.put_object_acl(Bucket="acl-site", Key="index.html", ACL="public-read")
    assert anon.get_object(Bucket="acl-site", Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    # a new version starts private, as in S3
    s3.put_object(Bucket="acl-site", Key="index.html", Body=b"v2")
    assert _error(lambda: anon.get_object(Bucket="acl-site", Key="index.html")) == "AccessDenied"
    assert s3.get_object(Bucket="acl-site", Key="index.html")["Body"].read() == b"v2"


def test_public_bucket_lists_anonymously(s3: S3Client, anon: S3Client) -> None:
    s3.create_bucket(Bucket="acl-list", ACL="public-read")
    s3.put_object(Bucket="acl-list", Key="a", Body=b"a")
    s3.put_object(Bucket="acl-list", Key="b", Body=b"b", ACL="public-read")
    keys = [o["Key"] for o in anon.list_objects_v2(Bucket="acl-list")["Contents"]]
    assert keys == ["a", "b"]
    assert [o["Key"] for o in anon.list_objects(Bucket="acl-list")["Contents"]] == ["a", "b"]
    anon.head_bucket(Bucket="acl-list")
    # listing is public, object contents are not (S3's bucket READ grant)
    assert _error(lambda: anon.get_object(Bucket="acl-list", Key="a")) == "AccessDenied"
    assert anon.get_object(Bucket="acl-list", Key="b")["Body"].read() == b"b"
    # a listable bucket may say that a key is missing
    assert _error(lambda: anon.get_object(Bucket="acl-list", Key="zz")) == "NoSuchKey"
    s3.put_bucket_acl(Bucket="acl-list", ACL="private")
    assert _error(lambda: anon.list_objects_v2(Bucket="acl-list")) == "AccessDenied"


def test_anonymous_without_an_owner_here(planet: PlanetThread, anon: S3Client) -> None:
    assert _error(lambda: anon.list_objects_v2(Bucket="acl-no-such-bucket")) == "AccessDenied"
    assert _error(lambda: anon.list_buckets()) == "AccessDenied"


def test_object_acl_on_missing_key(s3: S3Client) -> None:
    s3.create_bucket(Bucket="acl-missing")
    assert _error(lambda: s3.get_object_acl(Bucket="acl-missing", Key="k")) == "NoSuchKey"
    assert (
        _error(lambda: s3.put_object_acl(Bucket="acl-missing", Key="k", ACL="public-read"))
        == "NoSuchKey"
    )
