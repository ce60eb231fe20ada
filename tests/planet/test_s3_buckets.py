"""Buckets, listing, auth and tenancy through boto3 against a live in-process network."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def test_bucket_lifecycle(s3: S3Client) -> None:
    s3.create_bucket(Bucket="life")
    assert "life" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life")
    assert s3.get_bucket_location(Bucket="life").get("LocationConstraint") in (None, "")
    # S3's us-east-1 (the gateway's region here) answers 200 to re-creating a bucket
    # you own, and resets its ACL
    s3.put_bucket_acl(Bucket="life", ACL="public-read")
    again = s3.create_bucket(Bucket="life")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(s3.get_bucket_acl(Bucket="life")["Grants"]) == 1
    s3.put_object(Bucket="life", Key="k", Body=b"v")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="life")
    assert _code(e.value) == "BucketNotEmpty"
    s3.delete_object(Bucket="life", Key="k")
    s3.delete_bucket(Bucket="life")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="life")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="life")
    assert _code(e.value) == "NoSuchBucket"


def test_invalid_bucket_name(s3: S3Client) -> None:
    for name in ["ab", "UPPER", "bad..dots", "192.168.1.1", "-dash"]:
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert _code(e.value) == "InvalidBucketName", name


def test_list_objects_v2(s3: S3Client) -> None:
    s3.create_bucket(Bucket="listing")
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/", "d/x"]
    for k in keys:
        s3.put_object(Bucket="listing", Key=k, Body=b"")
    all_keys = [o["Key"] for o in s3.list_objects_v2(Bucket="listing")["Contents"]]
    assert all_keys == sorted(keys)
    r = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["c"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "d/"]
    assert r["KeyCount"] == 4
    r = s3.list_objects_v2(Bucket="listing", Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    # paging with max-keys and continuation tokens
    seen: list[str] = []
    token: str | None = None
    while True:
        kw: dict[str, str] = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket="listing", MaxKeys=2, **kw)
        seen += [o["Key"] for o in r.get("Contents", [])]
        assert r["KeyCount"] <= 2
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen == sorted(keys)
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket="listing", PaginationConfig={"PageSize": 3}))
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    r = s3.list_objects_v2(Bucket="listing", StartAfter="b/1")
    assert [o["Key"] for o in r["Contents"]] == ["c", "d/", "d/x"]
    r = s3.list_objects_v2(Bucket="listing", MaxKeys=0)
    assert r["KeyCount"] == 0 and not r["IsTruncated"]
    v1 = s3.list_objects(Bucket="listing", Delimiter="/")
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["a/", "b/", "d/"]


def test_wrong_secret_is_signature_mismatch(planet: PlanetThread) -> None:
    import msgspec

    cred = planet.planet.credential
    assert cred is not None
    bad = msgspec.structs.replace(cred, secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as e:
        planet.boto3(bad).list_buckets()
    assert _code(e.value) == "SignatureDoesNotMatch"


def test_unknown_access_key(planet: PlanetThread) -> None:
    import msgspec

    cred = planet.planet.credential
    assert cred is not None
    bad = msgspec.structs.replace(cred, access_key_id="AKIDUNKNOWN")
    with pytest.raises(ClientError) as e:
        planet.boto3(bad).list_buckets()
    assert _code(e.value) == "InvalidAccessKeyId"


def test_anonymous_denied(planet: PlanetThread) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{planet.planet.endpoint}/")
    assert e.value.code == 403
    assert b"AccessDenied" in e.value.read()


def test_projects_are_isolated(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="private-a")
    s3.put_object(Bucket="private-a", Key="secret", Body=b"a's data")
    other = planet.run(planet.planet.create_credential("other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(other)
    s3b = planet.boto3(other)
    assert "private-a" not in [b["Name"] for b in s3b.list_buckets()["Buckets"]]
    calls: list[Callable[[], object]] = [
        lambda: s3b.get_object(Bucket="private-a", Key="secret"),
        lambda: s3b.list_objects_v2(Bucket="private-a"),
        lambda: s3b.delete_object(Bucket="private-a", Key="secret"),
        lambda: s3b.put_object(Bucket="private-a", Key="x", Body=b"x"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert _code(e.value) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3b.create_bucket(Bucket="private-a")
    assert _code(e.value) == "BucketAlreadyExists"
    assert s3.get_object(Bucket="private-a", Key="secret")["Body"].read() == b"a's data"


# ---- bucket names, and tenancy of ACLs, tags, CORS and DeleteObjects ----------


def test_bucket_name_rules(s3: S3Client) -> None:
    for name in ["a" * 64, "xn--abc", "ends-", "under_score", "bucket-s3alias", "a..b"]:
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert _code(e.value) == "InvalidBucketName", name
    for name in ["abc", "a" * 63, "dotted.name.ok", "1-2-3"]:
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)
        s3.delete_bucket(Bucket=name)


def test_bucket_features_are_isolated(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="iso-a")
    s3.put_object(Bucket="iso-a", Key="k", Body=b"a", Tagging="t=1")
    s3.put_object(Bucket="iso-a", Key="pub", Body=b"public", ACL="public-read")
    s3.put_bucket_tagging(Bucket="iso-a", Tagging={"TagSet": [{"Key": "b", "Value": "1"}]})
    cors = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]}
    s3.put_bucket_cors(Bucket="iso-a", CORSConfiguration=cors)
    other = planet.run(planet.planet.create_credential("iso-other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(other)
    s3b = planet.boto3(other)
    tagging = {"TagSet": [{"Key": "x", "Value": "y"}]}
    calls: list[Callable[[], object]] = [
        lambda: s3b.get_bucket_acl(Bucket="iso-a"),
        lambda: s3b.put_bucket_acl(Bucket="iso-a", ACL="public-read"),
        lambda: s3b.get_object_acl(Bucket="iso-a", Key="k"),
        lambda: s3b.put_object_acl(Bucket="iso-a", Key="k", ACL="public-read"),
        lambda: s3b.get_object_tagging(Bucket="iso-a", Key="k"),
        lambda: s3b.put_object_tagging(Bucket="iso-a", Key="k", Tagging=tagging),
        lambda: s3b.delete_object_tagging(Bucket="iso-a", Key="k"),
        lambda: s3b.get_bucket_tagging(Bucket="iso-a"),
        lambda: s3b.put_bucket_tagging(Bucket="iso-a", Tagging=tagging),
        lambda: s3b.delete_bucket_tagging(Bucket="iso-a"),
        lambda: s3b.get_bucket_cors(Bucket="iso-a"),
        lambda: s3b.put_bucket_cors(Bucket="iso-a", CORSConfiguration=cors),
        lambda: s3b.delete_bucket_cors(Bucket="iso-a"),
        lambda: s3b.delete_objects(Bucket="iso-a", Delete={"Objects": [{"Key": "k"}]}),
        lambda: s3b.get_object(Bucket="iso-a", Key="k"),
        lambda: s3b.list_objects_v2(Bucket="iso-a"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert _code(e.value) == "AccessDenied"
    # public-read grants every caller, signed by another project too
    assert s3b.get_object(Bucket="iso-a", Key="pub")["Body"].read() == b"public"
    # the owner's state is untouched
    assert s3.get_object_tagging(Bucket="iso-a", Key="k")["TagSet"] == [{"Key": "t", "Value": "1"}]
    assert s3.get_bucket_tagging(Bucket="iso-a")["TagSet"] == [{"Key": "b", "Value": "1"}]
    assert s3.get_bucket_cors(Bucket="iso-a")["CORSRules"] == cors["CORSRules"]
    acl = s3.get_bucket_acl(Bucket="iso-a")["Grants"]
    assert [g["Permission"] for g in acl] == ["FULL_CONTROL"]
    assert s3.get_object(Bucket="iso-a", Key="k")["Body"].read() == b"a"
