"""S3 routing as a pure function: one table of requests and the endpoint each one is."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs, quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict

from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.router import (
    Endpoint,
    Op,
    route,
    validate_bucket_name,
    validate_key,
    virtual_host_bucket,
)

BASE = ["s3.example.com"]
COPY = {"x-amz-copy-source": "/src/key"}


def q(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True)


def r(
    method: str, target: str, headers: dict[str, str] | None = None, host: str = "localhost:9000"
) -> Endpoint:
    path, _, query = target.partition("?")
    return route(method, path, q(query), host, BASE, headers)


# (method, target, headers, expected name, bucket, key)
TABLE: list[tuple[str, str, dict[str, str] | None, Op, str | None, str | None]] = [
    ("GET", "/", None, Op.ListBuckets, None, None),
    ("GET", "", None, Op.ListBuckets, None, None),
    ("GET", "/b", None, Op.ListObjects, "b", None),
    ("GET", "/b/", None, Op.ListObjects, "b", None),
    ("GET", "/b?list-type=2&prefix=a", None, Op.ListObjectsV2, "b", None),
    ("GET", "/b?list-type=1", None, Op.ListObjects, "b", None),
    ("GET", "/b?location", None, Op.GetBucketLocation, "b", None),
    ("GET", "/b?versioning", None, Op.GetBucketVersioning, "b", None),
    ("GET", "/b?versions", None, Op.ListObjectVersions, "b", None),
    ("GET", "/b?uploads", None, Op.ListMultipartUploads, "b", None),
    ("GET", "/b?uploads&prefix=x", None, Op.ListMultipartUploads, "b", None),
    ("GET", "/b?acl", None, Op.GetBucketAcl, "b", None),
    ("GET", "/b?tagging", None, Op.GetBucketTagging, "b", None),
    ("GET", "/b?cors", None, Op.GetBucketCors, "b", None),
    ("GET", "/b?policy", None, Op.GetBucketPolicy, "b", None),
    ("GET", "/b?policyStatus", None, Op.GetBucketPolicyStatus, "b", None),
    ("GET", "/b?lifecycle", None, Op.GetBucketLifecycleConfiguration, "b", None),
    ("GET", "/b?website", None, Op.GetBucketWebsite, "b", None),
    ("GET", "/b?logging", None, Op.GetBucketLogging, "b", None),
    ("GET", "/b?notification", None, Op.GetBucketNotificationConfiguration, "b", None),
    ("GET", "/b?replication", None, Op.GetBucketReplication, "b", None),
    ("GET", "/b?encryption", None, Op.GetBucketEncryption, "b", None),
    ("GET", "/b?object-lock", None, Op.GetObjectLockConfiguration, "b", None),
    ("GET", "/b?requestPayment", None, Op.GetBucketRequestPayment, "b", None),
    ("GET", "/b?accelerate", None, Op.GetBucketAccelerateConfiguration, "b", None),
    ("GET", "/b?ownershipControls", None, Op.GetBucketOwnershipControls, "b", None),
    ("GET", "/b?publicAccessBlock", None, Op.GetPublicAccessBlock, "b", None),
    ("GET", "/b?analytics", None, Op.ListBucketAnalyticsConfigurations, "b", None),
    ("GET", "/b?analytics&id=x", None, Op.GetBucketAnalyticsConfiguration, "b", None),
    ("GET", "/b?inventory&id=x", None, Op.GetBucketInventoryConfiguration, "b", None),
    ("GET", "/b?metrics", None, Op.ListBucketMetricsConfigurations, "b", None),
    (
        "GET",
        "/b?intelligent-tiering",
        None,
        Op.ListBucketIntelligentTieringConfigurations,
        "b",
        None,
    ),
    ("GET", "/b?unknown-param=1", None, Op.ListObjects, "b", None),
    ("HEAD", "/b", None, Op.HeadBucket, "b", None),
    ("HEAD", "/b?acl", None, Op.HeadBucket, "b", None),
    ("PUT", "/b", None, Op.CreateBucket, "b", None),
    ("PUT", "/b/", None, Op.CreateBucket, "b", None),
    ("PUT", "/b?versioning", None, Op.PutBucketVersioning, "b", None),
    ("PUT", "/b?acl", None, Op.PutBucketAcl, "b", None),
    ("PUT", "/b?tagging", None, Op.PutBucketTagging, "b", None),
    ("PUT", "/b?cors", None, Op.PutBucketCors, "b", None),
    ("PUT", "/b?policy", None, Op.PutBucketPolicy, "b", None),
    ("PUT", "/b?lifecycle", None, Op.PutBucketLifecycleConfiguration, "b", None),
    ("PUT", "/b?object-lock", None, Op.PutObjectLockConfiguration, "b", None),
    ("PUT", "/b?analytics&id=1", None, Op.PutBucketAnalyticsConfiguration, "b", None),
    ("DELETE", "/b", None, Op.DeleteBucket, "b", None),
    ("DELETE", "/b?tagging", None, Op.DeleteBucketTagging, "b", None),
    ("DELETE", "/b?cors", None, Op.DeleteBucketCors, "b", None),
    ("DELETE", "/b?policy", None, Op.DeleteBucketPolicy, "b", None),
    ("DELETE", "/b?lifecycle", None, Op.DeleteBucketLifecycle, "b", None),
    ("DELETE", "/b?encryption", None, Op.DeleteBucketEncryption, "b", None),
    ("DELETE", "/b?metrics&id=1", None, Op.DeleteBucketMetricsConfiguration, "b", None),
    ("POST", "/b?delete", None, Op.DeleteObjects, "b", None),
    ("POST", "/b", None, Op.PostObject, "b", None),
    ("GET", "/b/k", None, Op.GetObject, "b", "k"),
    ("GET", "/b/k?versionId=v1", None, Op.GetObject, "b", "k"),
    ("GET", "/b/k?response-content-type=text/plain", None, Op.GetObject, "b", "k"),
    ("GET", "/b/k?uploadId=u", None, Op.ListParts, "b", "k"),
    ("GET", "/b/k?acl", None, Op.GetObjectAcl, "b", "k"),
    ("GET", "/b/k?tagging", None, Op.GetObjectTagging, "b", "k"),
    ("GET", "/b/k?retention", None, Op.GetObjectRetention, "b", "k"),
    ("GET", "/b/k?legal-hold", None, Op.GetObjectLegalHold, "b", "k"),
    ("GET", "/b/k?torrent", None, Op.GetObjectTorrent, "b", "k"),
    ("GET", "/b/k?attributes", None, Op.GetObjectAttributes, "b", "k"),
    ("HEAD", "/b/k", None, Op.HeadObject, "b", "k"),
    ("HEAD", "/b/k?partNumber=2", None, Op.HeadObject, "b", "k"),
    ("PUT", "/b/k", None, Op.PutObject, "b", "k"),
    ("PUT", "/b/k", COPY, Op.CopyObject, "b", "k"),
    ("PUT", "/b/k", {"X-Amz-Copy-Source": "src/k"}, Op.CopyObject, "b", "k"),
    ("PUT", "/b/k?partNumber=1&uploadId=u", None, Op.UploadPart, "b", "k"),
    ("PUT", "/b/k?partNumber=1&uploadId=u", COPY, Op.UploadPartCopy, "b", "k"),
    ("PUT", "/b/k?acl", None, Op.PutObjectAcl, "b", "k"),
    ("PUT", "/b/k?tagging", None, Op.PutObjectTagging, "b", "k"),
    ("PUT", "/b/k?retention", None, Op.PutObjectRetention, "b", "k"),
    ("PUT", "/b/k?legal-hold", None, Op.PutObjectLegalHold, "b", "k"),
    ("POST", "/b/k?uploads", None, Op.CreateMultipartUpload, "b", "k"),
    ("POST", "/b/k?uploadId=u", None, Op.CompleteMultipartUpload, "b", "k"),
    ("POST", "/b/k?restore", None, Op.RestoreObject, "b", "k"),
    ("POST", "/b/k?select&select-type=2", None, Op.SelectObjectContent, "b", "k"),
    ("DELETE", "/b/k", None, Op.DeleteObject, "b", "k"),
    ("DELETE", "/b/k?versionId=3", None, Op.DeleteObject, "b", "k"),
    ("DELETE", "/b/k?uploadId=u", None, Op.AbortMultipartUpload, "b", "k"),
    ("DELETE", "/b/k?tagging", None, Op.DeleteObjectTagging, "b", "k"),
    ("OPTIONS", "/b/k", None, Op.Options, "b", "k"),
    ("OPTIONS", "/b", None, Op.Options, "b", None),
    ("OPTIONS", "/", None, Op.Options, None, None),
    ("get", "/b/k", None, Op.GetObject, "b", "k"),
    # keys: decoded, trailing slash and double slashes kept
    ("GET", "/b/dir/", None, Op.GetObject, "b", "dir/"),
    ("GET", "/b//k", None, Op.GetObject, "b", "/k"),
    ("GET", "/b/a//b///c", None, Op.GetObject, "b", "a//b///c"),
    ("GET", "/b/a%20b%2Bc+d", None, Op.GetObject, "b", "a b+c+d"),
    ("GET", "/b/a%2Fb", None, Op.GetObject, "b", "a/b"),
    ("GET", "/b/%E6%97%A5%E6%9C%AC", None, Op.GetObject, "b", "日本"),
    ("GET", "/b/%25", None, Op.GetObject, "b", "%"),
    ("GET", "/b/./..", None, Op.GetObject, "b", "./.."),
    ("GET", "/my.bucket-1/k", None, Op.GetObject, "my.bucket-1", "k"),
    ("GET", "/b%2Dx/k", None, Op.GetObject, "b-x", "k"),
]


@pytest.mark.parametrize(("method", "target", "headers", "name", "bucket", "key"), TABLE)
def test_route_table(
    method: str,
    target: str,
    headers: dict[str, str] | None,
    name: Op,
    bucket: str | None,
    key: str | None,
) -> None:
    ep = r(method, target, headers)
    assert (ep.name, ep.bucket, ep.key) == (name, bucket, key)
    assert not ep.virtual_host


def test_parameters_are_parsed() -> None:
    ep = r("PUT", "/b/k?partNumber=10000&uploadId=abc%2Fdef")
    assert (ep.part_number, ep.upload_id) == (10000, "abc/def")
    ep = r("GET", "/b/k?versionId=v1&partNumber=3")
    assert (ep.version_id, ep.part_number, ep.upload_id) == ("v1", 3, None)
    ep = r("POST", "/b/k?uploadId=u1")
    assert ep.upload_id == "u1" and ep.part_number is None
    assert r("GET", "/b/k").part_number is None
    assert r("PUT", "/b/k?partNumber=0007&uploadId=u").part_number == 7


def test_copy_is_put_without_headers() -> None:
    assert r("PUT", "/b/k").name == Op.PutObject
    assert r("PUT", "/b/k?partNumber=1&uploadId=u").name == Op.UploadPart


@pytest.mark.parametrize(
    "target",
    [
        "/b/k?partNumber=0&uploadId=u",
        "/b/k?partNumber=10001&uploadId=u",
        "/b/k?partNumber=-1&uploadId=u",
        "/b/k?partNumber=1.5&uploadId=u",
        "/b/k?partNumber=abc&uploadId=u",
        "/b/k?partNumber=&uploadId=u",
        "/b/k?partNumber=%EF%BC%91&uploadId=u",
        "/b/k?partNumber=00000000001&uploadId=u",
        "/b/k?uploadId=u",
        "/b/k?partNumber=1",
    ],
)
def test_bad_part_number(target: str) -> None:
    with pytest.raises(S3Error) as info:
        r("PUT", target)
    assert (info.value.code, info.value.status) == ("InvalidArgument", 400)


def test_bad_part_number_on_get() -> None:
    with pytest.raises(S3Error) as info:
        r("GET", "/b/k?partNumber=0")
    assert info.value.fields["ArgumentName"] == "partNumber"


@pytest.mark.parametrize(
    ("method", "target", "resource_type"),
    [
        ("PUT", "/", "SERVICE"),
        ("DELETE", "/", "SERVICE"),
        ("POST", "/", "SERVICE"),
        ("HEAD", "/", "SERVICE"),
        ("PATCH", "/b", "BUCKET"),
        ("POST", "/b/k", "OBJECT"),
        ("PATCH", "/b/k", "OBJECT"),
        ("TRACE", "/b/k", "OBJECT"),
    ],
)
def test_method_not_allowed(method: str, target: str, resource_type: str) -> None:
    with pytest.raises(S3Error) as info:
        r(method, target)
    err = info.value
    assert (err.code, err.status) == ("MethodNotAllowed", 405)
    assert err.fields == {"Method": method, "ResourceType": resource_type}


def test_invalid_utf8_path() -> None:
    with pytest.raises(S3Error) as info:
        r("GET", "/b/%FF%FE")
    assert (info.value.code, info.value.status) == ("InvalidURI", 400)


# -- virtual-hosted style -------------------------------------------------------------------

VHOST: list[tuple[str, str, list[str], str | None]] = [
    ("b.s3.example.com", "/k", BASE, "b"),
    ("b.s3.example.com:9000", "/k", BASE, "b"),
    ("B.S3.Example.COM", "/k", BASE, "b"),
    ("b.s3.example.com.", "/k", BASE, "b"),
    ("my.dotted.bucket.s3.example.com", "/k", BASE, "my.dotted.bucket"),
    ("b.s3.example.com", "/k", ["s3.example.com:9000"], "b"),
    ("b.s3.example.com", "/k", ["example.com", "s3.example.com"], "b"),
    ("b.s3.example.com", "/k", ["s3.example.com", "example.com"], "b"),
    ("s3.example.com", "/b/k", BASE, None),
    ("s3.example.com:9000", "/b/k", BASE, None),
    ("b.other.com", "/b/k", BASE, None),
    ("bs3.example.com", "/b/k", BASE, None),
    ("localhost", "/b/k", ["localhost"], None),
    ("localhost:9000", "/b/k", ["localhost"], None),
    ("b.localhost:9000", "/k", ["localhost"], "b"),
    ("127.0.0.1:9000", "/b/k", ["0.0.1"], None),
    ("127.0.0.1", "/b/k", BASE, None),
    ("[::1]:9000", "/b/k", BASE, None),
    ("::1", "/b/k", BASE, None),
    ("", "/b/k", BASE, None),
    ("b.s3.example.com", "/b/k", [], None),
]


@pytest.mark.parametrize(("host", "path", "bases", "bucket"), VHOST)
def test_virtual_host_bucket(host: str, path: str, bases: list[str], bucket: str | None) -> None:
    assert virtual_host_bucket(host, bases) == bucket
    ep = route("GET", path, {}, host, bases)
    assert ep.virtual_host == (bucket is not None)
    assert (ep.bucket, ep.key) == (bucket or "b", "k")


@pytest.mark.parametrize(
    ("method", "target", "name", "key"),
    [
        ("GET", "/", Op.ListObjects, None),
        ("GET", "", Op.ListObjects, None),
        ("GET", "/?list-type=2", Op.ListObjectsV2, None),
        ("PUT", "/", Op.CreateBucket, None),
        ("DELETE", "/", Op.DeleteBucket, None),
        ("POST", "/?delete", Op.DeleteObjects, None),
        ("GET", "/?location", Op.GetBucketLocation, None),
        ("GET", "/k", Op.GetObject, "k"),
        ("GET", "//k", Op.GetObject, "/k"),
        ("GET", "/a/b/", Op.GetObject, "a/b/"),
        ("PUT", "/a%20b", Op.PutObject, "a b"),
        ("POST", "/k?uploads", Op.CreateMultipartUpload, "k"),
    ],
)
def test_virtual_host_routes(method: str, target: str, name: Op, key: str | None) -> None:
    ep = r(method, target, host="bucket.s3.example.com:443")
    assert (ep.name, ep.bucket, ep.key, ep.virtual_host) == (name, "bucket", key, True)


# -- query shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"partNumber": "2", "uploadId": "u"},
        {"partNumber": ["2"], "uploadId": ["u"]},
        MultiDict([("partNumber", "2"), ("uploadId", "u")]),
    ],
)
def test_query_shapes(query: Any) -> None:
    ep = route("PUT", "/b/k", query, "localhost", BASE, CIMultiDict(COPY))
    assert (ep.name, ep.part_number, ep.upload_id) == (Op.UploadPartCopy, 2, "u")


def test_endpoint_is_frozen_and_names_are_strings() -> None:
    ep = r("GET", "/b/k")
    with pytest.raises(AttributeError):
        cast(Any, ep).bucket = "x"  # Any: the assignment its type forbids
    assert ep.name == "GetObject" and {"GetObject": 1}[ep.name] == 1


@settings(max_examples=100, deadline=None)
@given(
    key=st.text(st.characters(codec="utf-8"), min_size=1, max_size=80),
    virtual=st.booleans(),
)
def test_any_key_round_trips(key: str, virtual: bool) -> None:
    """Whatever the key, encoding it as clients do and routing gives it back."""
    encoded = quote(key.encode(), safe="/~")
    if virtual:
        ep = route("GET", "/" + encoded, {}, "bkt.s3.example.com", BASE)
    else:
        ep = route("GET", "/bkt/" + encoded, {}, "s3.example.com", BASE)
    assert (ep.name, ep.bucket, ep.key) == (Op.GetObject, "bkt", key)


# -- names -------------------------------------------------------------------------------------

GOOD_BUCKETS = [
    "abc",
    "a" * 63,
    "my-bucket",
    "my.bucket",
    "b1.b2-b3",
    "123",
    "1-2",
    "a.b.c.d",
    "999.1.1.1.1",
    "xn-a",
    "sthree",
    "b-s3alias-x",
]
BAD_BUCKETS = [
    "",
    "ab",
    "a" * 64,
    "My-Bucket",
    "my_bucket",
    "-bucket",
    "bucket-",
    ".bucket",
    "bucket.",
    "my..bucket",
    "192.168.5.4",
    "10.0.0.1",
    "xn--bucket",
    "sthree-bucket",
    "sthree-configurator",
    "amzn-s3-demo-bucket",
    "bucket-s3alias",
    "bucket--ol-s3",
    "bucket.mrap",
    "bucket--x-s3",
    "bucket--table-s3",
    "bucket/x",
    "buck et",
    "bücket",
    "bucket\n",
]


@pytest.mark.parametrize("name", GOOD_BUCKETS)
def test_valid_bucket_names(name: str) -> None:
    validate_bucket_name(name)


@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(S3Error) as info:
        validate_bucket_name(name)
    assert (info.value.code, info.value.status) == ("InvalidBucketName", 400)
    assert info.value.fields["BucketName"] == name


@pytest.mark.parametrize("key", ["k", "a" * 1024, "é" * 512, "🙂" * 256, "日" * 341, " ", "/"])
def test_valid_keys(key: str) -> None:
    validate_key(key)


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("", "InvalidArgument"),
        ("a" * 1025, "KeyTooLongError"),
        ("é" * 513, "KeyTooLongError"),
        ("🙂" * 257, "KeyTooLongError"),
        ("日" * 342, "KeyTooLongError"),
    ],
)
def test_invalid_keys(key: str, code: str) -> None:
    with pytest.raises(S3Error) as info:
        validate_key(key)
    assert (info.value.code, info.value.status) == (code, 400)
