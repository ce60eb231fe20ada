"""Bucket CORS through boto3, and what browsers see: preflights and headers on real answers."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client

RULES = [
    {
        "ID": "app",
        "AllowedOrigins": ["https://app.example.com", "https://*.example.org"],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["content-type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-request-id"],
        "MaxAgeSeconds": 300,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]


def _code(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _error(call: Any) -> str:
    with pytest.raises(ClientError) as e:
        call()
    return _code(e.value)


def _send(url: str, method: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="cors")
    s3.put_bucket_cors(Bucket="cors", CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket="cors", Key="page", Body=b"hello")
    return "cors"


def test_cors_configuration_round_trip(s3: S3Client, bucket: str) -> None:
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    s3.create_bucket(Bucket="cors-none")
    assert _error(lambda: s3.get_bucket_cors(Bucket="cors-none")) == "NoSuchCORSConfiguration"
    s3.put_bucket_cors(
        Bucket="cors-none",
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]},
    )
    s3.delete_bucket_cors(Bucket="cors-none")
    assert _error(lambda: s3.get_bucket_cors(Bucket="cors-none")) == "NoSuchCORSConfiguration"


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
        ({"AllowedOrigins": ["https://*.*.com"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
    ],
)
def test_bad_cors_rules(s3: S3Client, bucket: str, rule: dict[str, list[str]], code: str) -> None:
    config = {"CORSRules": [rule]}
    assert _error(lambda: s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=config)) == code
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES  # unchanged


def test_malformed_cors_xml(s3: S3Client, bucket: str) -> None:
    def send(params: Any, **kwargs: Any) -> None:
        params["body"] = b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"

    s3.meta.events.register("before-call.s3.PutBucketCors", send)
    try:
        config = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]}
        assert _error(lambda: s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=config)) == (
            "MalformedXML"
        )
    finally:
        s3.meta.events.unregister("before-call.s3.PutBucketCors", send)


def test_preflight(planet: PlanetThread, bucket: str) -> None:
    url = f"{planet.planet.endpoint}/{bucket}/page"
    status, h, _ = _send(
        url,
        "OPTIONS",
        {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Content-Type, X-Amz-Date",
        },
    )
    assert status == 200
    assert h["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert h["Access-Control-Allow-Methods"] == "GET, PUT"
    assert h["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert h["Access-Control-Max-Age"] == "300"
    assert "Origin" in h["Vary"]
    # the bucket path too, and the wildcard rule for anyone else's GET
    status, h, _ = _send(
        f"{planet.planet.endpoint}/{bucket}",
        "OPTIONS",
        {"Origin": "https://elsewhere.net", "Access-Control-Request-Method": "GET"},
    )
    assert status == 200 and h["Access-Control-Allow-Origin"] == "*"
    # refusals
    for headers in (
        {"Origin": "https://elsewhere.net", "Access-Control-Request-Method": "PUT"},
        {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization",
        },
    ):
        status, h, body = _send(url, "OPTIONS", headers)
        assert status == 403 and b"<Code>CORSResponse</Code>" in body
        assert b"This CORS request is not allowed" in body
        assert "Access-Control-Allow-Origin" not in h
    status, _, body = _send(url, "OPTIONS", {"Access-Control-Request-Method": "GET"})
    assert status == 400
    # a bucket without rules, and one nobody here owns
    status, _, body = _send(
        f"{planet.planet.endpoint}/cors-none/x",
        "OPTIONS",
        {"Origin": "https://a.com", "Access-Control-Request-Method": "GET"},
    )
    assert status == 403 and b"CORSResponse" in body


def test_headers_on_real_responses(planet: PlanetThread, bucket: str) -> None:
    s3 = planet.boto3(signature_version="s3v4")  # presigned URLs are SigV2 by default
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "page"})
    status, h, body = _send(url, "GET", {"Origin": "https://b.example.org"})
    assert (status, body) == (200, b"hello")
    assert h["Access-Control-Allow-Origin"] == "https://b.example.org"
    assert h["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert "Origin" in h["Vary"]
    # errors carry them too, so the page can read why
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    status, h, _ = _send(missing, "GET", {"Origin": "https://b.example.org"})
    assert status == 404 and h["Access-Control-Allow-Origin"] == "https://b.example.org"
    # no matching rule: no grant, but Vary still tells caches the answer depends on Origin
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"})
    req = urllib.request.Request(
        put, data=b"x", method="PUT", headers={"Origin": "https://elsewhere.net"}
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers
        assert "Origin" in r.headers["Vary"]
    # no Origin, no CORS headers
    status, h, _ = _send(url, "GET", {})
    assert status == 200 and "Access-Control-Allow-Origin" not in h


MID_RULES = [
    {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET"]},
    {"AllowedOrigins": ["http://*.x"], "AllowedMethods": ["GET"]},
    {"AllowedOrigins": ["https://app-*.example.com"], "AllowedMethods": ["PUT"]},
]


@pytest.mark.parametrize(
    ("origin", "put_allowed", "get_allowed"),
    [
        ("https://a.example.com", False, True),
        ("https://deep.sub.example.com", False, True),
        ("http://anything.x", False, True),
        ("https://app-staging.example.com", True, True),
        ("https://example.com", False, False),  # "*." needs the dot
        ("http://a.example.com", False, False),  # the scheme is part of the origin
        ("https://a.example.com.evil.net", False, False),
        ("https://app.evil.net", False, False),
        ("https://x.y", False, False),
    ],
)
def test_wildcard_in_the_middle_of_an_origin(
    planet: PlanetThread, s3: S3Client, origin: str, put_allowed: bool, get_allowed: bool
) -> None:
    if "cors-mid" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="cors-mid")
        s3.put_bucket_cors(Bucket="cors-mid", CORSConfiguration={"CORSRules": MID_RULES})
        s3.put_object(Bucket="cors-mid", Key="page", Body=b"mid")
    url = f"{planet.planet.endpoint}/cors-mid/page"
    for method, allowed in (("PUT", put_allowed), ("GET", get_allowed)):
        status, h, _ = _send(
            url, "OPTIONS", {"Origin": origin, "Access-Control-Request-Method": method}
        )
        if allowed:
            assert status == 200 and h["Access-Control-Allow-Origin"] == origin
            assert h["Access-Control-Allow-Methods"] == method
        else:
            assert status == 403 and "Access-Control-Allow-Origin" not in h
    signed = planet.boto3(signature_version="s3v4")
    get = signed.generate_presigned_url("get_object", Params={"Bucket": "cors-mid", "Key": "page"})
    status, h, body = _send(get, "GET", {"Origin": origin})
    assert (status, body) == (200, b"mid")
    assert h.get("Access-Control-Allow-Origin") == (origin if get_allowed else None)
