"""SigV4 verification against AWS's published examples and real botocore signatures."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.sigv4 import (
    EMPTY_SHA256,
    AuthResult,
    SigV4Request,
    derive_signing_key,
    verify,
    verify_payload_sha256,
)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_NOW = datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC)
SECRETS = {AK: SK, "OTHERKEY": "other-secret"}


def lookup(access_key: str) -> str | None:
    return SECRETS.get(access_key)


def code_of(req: SigV4Request, now: datetime | None = None, **kw: Any) -> str:
    with pytest.raises(S3Error) as info:
        verify(req, lookup, now, **kw)
    return info.value.code


# -- AWS documentation vectors ----------------------------------------------------------

# "Signature Calculations for the Authorization Header: Transferring Payload in a
# Single Chunk" (AWS S3 API reference), and the streaming and query-string pages.
GET_OBJECT = SigV4Request(
    "GET",
    "/test.txt",
    "",
    [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
    ],
)

PUT_OBJECT = SigV4Request(
    "PUT",
    "/test$file.text",
    "",
    [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "x-amz-content-sha256",
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        ),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    ],
)

GET_LIFECYCLE = SigV4Request(
    "GET",
    "/",
    "lifecycle",
    [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
    ],
)

LIST_OBJECTS = SigV4Request(
    "GET",
    "/",
    "max-keys=2&prefix=J",
    [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)

STREAMING_PUT = SigV4Request(
    "PUT",
    "/examplebucket/chunkObject.txt",
    "",
    [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class,"
            "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        ),
    ],
)

PRESIGNED_GET = SigV4Request(
    "GET",
    "/test.txt",
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    [("Host", "examplebucket.s3.amazonaws.com")],
)


def test_aws_example_get_object_single_chunk() -> None:
    auth = verify(GET_OBJECT, lookup, AWS_NOW)
    assert auth.access_key == AK
    assert auth.secret == SK
    assert auth.payload_mode == "signed"
    assert auth.payload_sha256 == EMPTY_SHA256
    assert auth.scope == "20130524/us-east-1/s3/aws4_request"
    assert auth.timestamp == "20130524T000000Z"
    assert auth.region == "us-east-1"
    assert auth.seed_signature.startswith("f0e8bdb8")
    assert auth.signing_key == derive_signing_key(SK, "20130524", "us-east-1")
    assert not auth.presigned and not auth.anonymous and not auth.streaming


@pytest.mark.parametrize(
    "req",
    [PUT_OBJECT, GET_LIFECYCLE, LIST_OBJECTS, STREAMING_PUT, PRESIGNED_GET],
    ids=["put-dollar-path-and-date", "get-lifecycle", "list-objects", "streaming", "presigned"],
)
def test_aws_examples_verify(req: SigV4Request) -> None:
    auth = verify(req, lookup, AWS_NOW)
    assert auth.access_key == AK


def test_aws_example_put_payload_hash() -> None:
    auth = verify(PUT_OBJECT, lookup, AWS_NOW)
    digest = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    verify_payload_sha256(auth, digest)
    with pytest.raises(S3Error) as info:
        verify_payload_sha256(auth, hashlib.sha256(b"Welcome to Amazon S3!").hexdigest())
    assert info.value.code == "XAmzContentSHA256Mismatch"
    assert info.value.status == 400


def test_aws_example_streaming_seed() -> None:
    auth = verify(STREAMING_PUT, lookup, AWS_NOW)
    assert auth.payload_mode == "streaming-signed"
    assert auth.streaming
    assert auth.payload_sha256 is None
    assert auth.seed_signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def test_aws_example_presigned() -> None:
    auth = verify(PRESIGNED_GET, lookup, AWS_NOW + timedelta(hours=23))
    assert auth.presigned and auth.payload_mode == "unsigned"
    err = _raises(PRESIGNED_GET, AWS_NOW + timedelta(seconds=86401))
    assert (err.code, err.status, err.message) == ("AccessDenied", 403, "Request has expired")
    assert err.fields["X-Amz-Expires"] == "86400"


def _headers_replace(req: SigV4Request, name: str, value: str | None) -> SigV4Request:
    assert isinstance(req.headers, list)
    out = [(k, v) for k, v in req.headers if k.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return replace(req, headers=out)


def _raises(req: SigV4Request, now: datetime | None = AWS_NOW, **kw: Any) -> S3Error:
    with pytest.raises(S3Error) as info:
        verify(req, lookup, now, **kw)
    return info.value


def _auth_of(req: SigV4Request) -> str:
    assert isinstance(req.headers, list)
    return str(next(v for k, v in req.headers if k == "Authorization"))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r: replace(r, method="PUT"), "SignatureDoesNotMatch"),
        (lambda r: replace(r, path="/test.txt2"), "SignatureDoesNotMatch"),
        (lambda r: replace(r, query="x=1"), "SignatureDoesNotMatch"),
        (lambda r: _headers_replace(r, "Range", "bytes=0-10"), "SignatureDoesNotMatch"),
        (lambda r: _headers_replace(r, "Host", "other.s3.amazonaws.com"), "SignatureDoesNotMatch"),
        (lambda r: _headers_replace(r, "x-amz-date", "20130524T000001Z"), "SignatureDoesNotMatch"),
        (
            lambda r: _headers_replace(r, "x-amz-date", "20130525T000000Z"),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(r, "x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            "SignatureDoesNotMatch",
        ),
        (lambda r: _headers_replace(r, "x-amz-content-sha256", None), "InvalidRequest"),
        (lambda r: _headers_replace(r, "x-amz-content-sha256", "nonsense"), "InvalidArgument"),
        (lambda r: _headers_replace(r, "x-amz-date", None), "AccessDenied"),
        (lambda r: _headers_replace(r, "x-amz-date", "yesterday"), "AccessDenied"),
        (lambda r: _headers_replace(r, "x-amz-acl", "public-read"), "AccessDenied"),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).replace(AK, "NOSUCHKEY")),
            "InvalidAccessKeyId",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).replace(AK, "OTHERKEY")),
            "SignatureDoesNotMatch",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("Signature=f", "Signature=e")
            ),
            "SignatureDoesNotMatch",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("Signature=f0", "Signature=é")
            ),
            "SignatureDoesNotMatch",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("us-east-1", "eu-west-1")
            ),
            "SignatureDoesNotMatch",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).replace("/s3/", "/iam/")),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("aws4_request", "aws5_request")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("/20130524/", "/20130525/")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("/20130524/", "/2013-05-24/")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("/us-east-1/", "//")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).replace("host;", "")),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("range;", "range;;")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).replace("range;", "")),
            "SignatureDoesNotMatch",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r).split(",Signature")[0]),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("Credential=", "Credential")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(r, "Authorization", _auth_of(r) + ",Signature=00"),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", _auth_of(r).replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")
            ),
            "AuthorizationHeaderMalformed",
        ),
        (
            lambda r: _headers_replace(
                r,
                "Authorization",
                _auth_of(r).replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            ),
            "NotImplemented",
        ),
        (
            lambda r: _headers_replace(
                r, "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="
            ),
            "InvalidRequest",
        ),
        (
            lambda r: replace(r, headers=[*r.headers, ("Authorization", _auth_of(r))]),
            "AuthorizationHeaderMalformed",
        ),
        (lambda r: replace(r, query="X-Amz-Algorithm=AWS4-HMAC-SHA256"), "InvalidArgument"),
        (
            lambda r: replace(r, query="AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1"),
            "InvalidRequest",
        ),
    ],
)
def test_header_auth_tampering(change: Any, code: str) -> None:
    """Every change to what the signature covers, or to the header's shape, is refused."""
    assert _raises(change(GET_OBJECT)).code == code


def test_signature_mismatch_reports_canonical_request() -> None:
    err = _raises(replace(GET_OBJECT, method="HEAD"))
    assert err.status == 403
    assert err.fields["AWSAccessKeyId"] == AK
    assert err.fields["CanonicalRequest"].startswith("HEAD\n/test.txt\n\nhost:")
    assert err.fields["StringToSign"].startswith("AWS4-HMAC-SHA256\n20130524T000000Z\n")
    assert SK not in str(err.fields)


def test_unsigned_amz_header_lists_names() -> None:
    err = _raises(_headers_replace(GET_OBJECT, "x-amz-meta-a", "1"))
    assert err.fields["HeadersNotSigned"] == "x-amz-meta-a"


def test_header_values_are_trimmed_and_collapsed() -> None:
    req = _headers_replace(GET_OBJECT, "Range", "  bytes=0-9  ")
    verify(req, lookup, AWS_NOW)
    req = _headers_replace(GET_OBJECT, "range", "bytes=0-9")
    verify(req, lookup, AWS_NOW)


def test_headers_as_multidict() -> None:
    from multidict import CIMultiDict

    assert isinstance(GET_OBJECT.headers, list)
    verify(replace(GET_OBJECT, headers=CIMultiDict(GET_OBJECT.headers)), lookup, AWS_NOW)


def test_headers_as_mapping() -> None:
    assert isinstance(GET_OBJECT.headers, list)
    verify(replace(GET_OBJECT, headers=dict(GET_OBJECT.headers)), lookup, AWS_NOW)


def test_now_from_request_and_skew_in_seconds() -> None:
    verify(replace(GET_OBJECT, now=AWS_NOW + timedelta(minutes=14)), lookup)
    req = replace(GET_OBJECT, now=AWS_NOW + timedelta(minutes=16))
    with pytest.raises(S3Error) as info:
        verify(req, lookup)
    assert info.value.code == "RequestTimeTooSkewed"
    verify(req, lookup, max_skew=20 * 60.0)
    verify(GET_OBJECT, lookup, datetime(2013, 5, 24, 0, 5))  # naive means UTC


@pytest.mark.parametrize("minutes", [-16, 16, -600, 6000])
def test_clock_skew(minutes: int) -> None:
    err = _raises(GET_OBJECT, AWS_NOW + timedelta(minutes=minutes))
    assert (err.code, err.status) == ("RequestTimeTooSkewed", 403)
    assert err.fields["MaxAllowedSkewMilliseconds"] == "900000"
    assert err.fields["RequestTime"] == "20130524T000000Z"


@pytest.mark.parametrize("minutes", [-15, -1, 0, 1, 15])
def test_clock_skew_within_limit(minutes: int) -> None:
    verify(GET_OBJECT, lookup, AWS_NOW + timedelta(minutes=minutes))


def test_date_header_alone_signs() -> None:
    """Without x-amz-date, the Date header is the request time; the string to sign
    carries it as basic ISO 8601. Signed here by botocore's own canonicalisation."""
    body = b"Welcome to Amazon S3."
    request = AWSRequest(
        method="PUT",
        url="https://examplebucket.s3.amazonaws.com/k",
        headers={
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
        },
        data=body,
    )
    signer = S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1")
    request.context["timestamp"] = "20130524T000000Z"
    canonical = signer.canonical_request(request)
    to_sign = signer.string_to_sign(request, canonical)
    signature = signer.signature(to_sign, request)
    assert "x-amz-date" not in canonical
    headers = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("X-Amz-Content-SHA256", hashlib.sha256(body).hexdigest()),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request, "
            f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
            f"Signature={signature}",
        ),
    ]
    auth = verify(SigV4Request("PUT", "/k", "", headers), lookup, AWS_NOW)
    assert auth.timestamp == "20130524T000000Z"
    bad = [(k, "Fri, 24 May 2013 00:00:01 GMT" if k == "Date" else v) for k, v in headers]
    assert _raises(SigV4Request("PUT", "/k", "", bad)).code == "SignatureDoesNotMatch"


def test_anonymous() -> None:
    auth = verify(SigV4Request("GET", "/b/k", "", [("Host", "h")]), lookup, AWS_NOW)
    assert auth.anonymous and auth.access_key is None and auth.payload_mode == "unsigned"
    auth = verify(
        SigV4Request(
            "PUT",
            "/b/k",
            "",
            [("Host", "h"), ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")],
        ),
        lookup,
        AWS_NOW,
    )
    assert auth.anonymous and auth.payload_mode == "streaming-unsigned-trailer"


def test_lookup_is_not_called_for_malformed_requests() -> None:
    calls: list[str] = []

    def spy(key: str) -> str | None:
        calls.append(key)
        return SK

    bad = _headers_replace(GET_OBJECT, "Authorization", _auth_of(GET_OBJECT).replace("/s3/", "/x/"))
    with pytest.raises(S3Error):
        verify(bad, spy, AWS_NOW)
    assert calls == []


# -- presigned URLs (AWS example) ---------------------------------------------------------


def _query_replace(req: SigV4Request, name: str, value: str | None) -> SigV4Request:
    parts = [p for p in req.query.split("&") if not p.startswith(name + "=")]
    if value is not None:
        parts.append(f"{name}={value}")
    return replace(req, query="&".join(parts))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r: replace(r, method="PUT"), "SignatureDoesNotMatch"),
        (lambda r: replace(r, path="/test.txt2"), "SignatureDoesNotMatch"),
        (lambda r: replace(r, query=r.query + "&versionId=1"), "SignatureDoesNotMatch"),
        (lambda r: _query_replace(r, "X-Amz-Expires", "86401"), "SignatureDoesNotMatch"),
        # out of range: S3's 403 AccessDenied (s3-tests' x_amz_expires_out_*_range)
        (lambda r: _query_replace(r, "X-Amz-Expires", "604801"), "AccessDenied"),
        (lambda r: _query_replace(r, "X-Amz-Expires", "0"), "AccessDenied"),
        (lambda r: _query_replace(r, "X-Amz-Expires", "-5"), "AccessDenied"),
        (lambda r: _query_replace(r, "X-Amz-Expires", "--5"), "AuthorizationQueryParametersError"),
        (lambda r: _query_replace(r, "X-Amz-Expires", "soon"), "AuthorizationQueryParametersError"),
        (lambda r: _query_replace(r, "X-Amz-Expires", None), "AuthorizationQueryParametersError"),
        (lambda r: _query_replace(r, "X-Amz-Signature", None), "AuthorizationQueryParametersError"),
        (lambda r: _query_replace(r, "X-Amz-Date", "20130524T000001Z"), "SignatureDoesNotMatch"),
        (
            lambda r: _query_replace(r, "X-Amz-Date", "20130524"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: _query_replace(r, "X-Amz-Date", "20130525T000000Z"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: _query_replace(r, "X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: _query_replace(r, "X-Amz-SignedHeaders", "x-amz-date"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: _query_replace(
                r, "X-Amz-Credential", "NOSUCH%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            ),
            "InvalidAccessKeyId",
        ),
        (
            lambda r: _query_replace(
                r, "X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
            ),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: replace(r, query=r.query + "&X-Amz-Date=20130524T000000Z"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda r: _headers_replace(r, "Host", "examplebucket.s3.amazonaws.com:8080"),
            "SignatureDoesNotMatch",
        ),
        (lambda r: _headers_replace(r, "x-amz-acl", "public-read"), "AccessDenied"),
        (lambda r: _headers_replace(r, "Authorization", _auth_of(GET_OBJECT)), "InvalidArgument"),
    ],
)
def test_presigned_tampering(change: Any, code: str) -> None:
    assert _raises(change(PRESIGNED_GET)).code == code


def test_presigned_not_yet_valid() -> None:
    err = _raises(PRESIGNED_GET, AWS_NOW - timedelta(minutes=16))
    assert (err.code, err.message) == ("AccessDenied", "Request is not valid yet")
    verify(PRESIGNED_GET, lookup, AWS_NOW - timedelta(minutes=14))


# -- botocore-signed requests -------------------------------------------------------------


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise Captured(request)


def _client(endpoint: str, style: str = "path", region: str = "eu-west-3") -> Any:
    session = boto3.session.Session(
        aws_access_key_id=AK, aws_secret_access_key=SK, region_name=region
    )
    client = session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4",
            retries={"max_attempts": 0},
            s3={"addressing_style": style},
        ),
    )
    client.meta.events.register("before-send.s3.*", _capture)
    return client


@pytest.fixture(scope="module")
def http_client() -> Iterator[Any]:
    yield _client("http://s3.example.com:9000")


@pytest.fixture(scope="module")
def https_client() -> Iterator[Any]:
    yield _client("https://s3.example.com", region="us-east-1")


def _send(call: Any, **params: Any) -> tuple[SigV4Request, bytes]:
    """Run a boto3 call up to the wire and return what the server would receive."""
    with pytest.raises(Captured) as info:
        call(**params)
    return to_sigv4(info.value.request)


def to_sigv4(request: Any) -> tuple[SigV4Request, bytes]:
    url = urlsplit(request.url)
    host = url.hostname or ""
    if url.port and url.port != {"http": 80, "https": 443}[url.scheme]:
        host += f":{url.port}"
    headers = [("Host", host)]
    for name, value in request.headers.items():
        if name.lower() == "host":  # awscrt's signer (used when installed) adds it itself
            headers[0] = (name, value.decode() if isinstance(value, bytes) else value)
            continue
        headers.append((name, value.decode() if isinstance(value, bytes) else value))
    body = request.body
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    else:
        data = body.read()
    return SigV4Request(request.method, url.path, url.query, headers), data


def test_botocore_put_over_http_signs_payload(http_client: Any) -> None:
    req, body = _send(http_client.put_object, Bucket="b", Key="k", Body=b"hello")
    auth = verify(req, lookup)
    assert auth.access_key == AK and auth.region == "eu-west-3"
    assert auth.payload_mode == "signed"
    verify_payload_sha256(auth, hashlib.sha256(body).hexdigest())


def test_botocore_put_over_https_is_streaming_trailer(https_client: Any) -> None:
    req, body = _send(https_client.put_object, Bucket="b", Key="k", Body=b"hello")
    auth = verify(req, lookup)
    assert auth.payload_mode == "streaming-unsigned-trailer"
    assert body.endswith(b"\r\n\r\n") and b"x-amz-checksum-crc32:" in body


KEYS = [
    "plain",
    "a b/c+d~e$f:g@h!i'j(k)l*m,n;o=p&q?r#s%t",
    "日本語/ключ/🙂",
    "trailing/",
    "double//slash",
    "/leading",
    "dots/./and/../kept",
    "percent%20literal",
    "x" * 1000,
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("operation", ["get_object", "head_object", "delete_object"])
def test_botocore_keys_verify(http_client: Any, key: str, operation: str) -> None:
    req, _ = _send(getattr(http_client, operation), Bucket="bucket", Key=key)
    verify(req, lookup)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (
            "list_objects_v2",
            {"Bucket": "b", "Prefix": "a b+c/é", "Delimiter": "/", "StartAfter": "x~y"},
        ),
        ("list_objects", {"Bucket": "b", "Marker": "m&n=o", "MaxKeys": 5}),
        ("list_buckets", {}),
        (
            "create_bucket",
            {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-3"}},
        ),
        ("delete_objects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "a"}, {"Key": "b"}]}}),
        ("create_multipart_upload", {"Bucket": "b", "Key": "k", "Metadata": {"color": "blue"}}),
        (
            "upload_part",
            {"Bucket": "b", "Key": "k", "UploadId": "u/+=", "PartNumber": 3, "Body": b"x"},
        ),
        ("list_parts", {"Bucket": "b", "Key": "k", "UploadId": "u"}),
        ("copy_object", {"Bucket": "b", "Key": "k", "CopySource": "src/key with space"}),
        ("get_object", {"Bucket": "b", "Key": "k", "Range": "bytes=0-9", "IfNoneMatch": '"abc"'}),
        (
            "put_object_tagging",
            {"Bucket": "b", "Key": "k", "Tagging": {"TagSet": [{"Key": "a", "Value": "b"}]}},
        ),
    ],
)
def test_botocore_operations_verify(
    http_client: Any, operation: str, params: dict[str, Any]
) -> None:
    req, body = _send(getattr(http_client, operation), **params)
    auth = verify(req, lookup)
    if auth.payload_mode == "signed":
        verify_payload_sha256(auth, hashlib.sha256(body).hexdigest())


def test_botocore_virtual_host_style() -> None:
    client = _client("http://s3.example.com", style="virtual")
    req, _ = _send(client.get_object, Bucket="my-bucket", Key="a/b c")
    assert isinstance(req.headers, list)  # to_sigv4 sends pairs
    assert ("host", "my-bucket.s3.example.com") in [(k.lower(), v) for k, v in req.headers]
    verify(req, lookup)


@settings(max_examples=40, deadline=None)
@given(key=st.text(st.characters(codec="utf-8"), min_size=1, max_size=60))
def test_botocore_any_key_verifies(key: str) -> None:
    req, _ = _send(_HYPOTHESIS_CLIENT.get_object, Bucket="b", Key=key)
    verify(req, lookup)


_HYPOTHESIS_CLIENT = _client("http://127.0.0.1:9000")


@pytest.mark.parametrize(
    "tamper",
    [
        "method",
        "path",
        "query",
        "signed-header",
        "date",
        "secret",
        "payload-hash",
        "add-amz-header",
    ],
)
def test_botocore_tampering_rejected(http_client: Any, tamper: str) -> None:
    req, _ = _send(
        http_client.put_object, Bucket="b", Key="k", Body=b"data", ContentType="text/plain"
    )
    verify(req, lookup)
    assert isinstance(req.headers, list)
    headers: list[tuple[str, str]] = req.headers
    secrets = dict(SECRETS)
    if tamper == "method":
        req = replace(req, method="POST")
    elif tamper == "path":
        req = replace(req, path="/b/k2")
    elif tamper == "query":
        req = replace(req, query="acl")
    elif tamper == "signed-header":
        req = replace(
            req,
            headers=[(k, "text/html" if k.lower() == "content-type" else v) for k, v in headers],
        )
    elif tamper == "date":
        # header names are compared case-insensitively: awscrt's signer writes them lowercase
        date = next(v for k, v in headers if k.lower() == "x-amz-date")
        original = datetime.strptime(date, "%Y%m%dT%H%M%SZ")
        when = original + timedelta(seconds=1)
        if when.date() != original.date():
            when = original - timedelta(seconds=1)
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        req = replace(
            req, headers=[(k, stamp if k.lower() == "x-amz-date" else v) for k, v in headers]
        )
    elif tamper == "secret":
        secrets[AK] = SK + "x"
    elif tamper == "payload-hash":
        fake = hashlib.sha256(b"other").hexdigest()
        req = replace(
            req,
            headers=[(k, fake if k.lower() == "x-amz-content-sha256" else v) for k, v in headers],
        )
    elif tamper == "add-amz-header":
        req = replace(req, headers=[*headers, ("x-amz-copy-source", "/other/key")])
    with pytest.raises(S3Error) as info:
        verify(req, secrets.get)
    expected = "AccessDenied" if tamper == "add-amz-header" else "SignatureDoesNotMatch"
    assert info.value.code == expected


def _botocore_presign(url: str, expires: int, region: str = "us-east-1") -> SigV4Request:
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials(AK, SK), "s3", region, expires=expires).add_auth(request)
    return to_sigv4(request.prepare())[0]


def test_botocore_presigned_url(https_client: Any) -> None:
    url = https_client.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k x/ü"}, ExpiresIn=100
    )
    parts = urlsplit(url)
    req = SigV4Request("GET", parts.path, parts.query, [("Host", parts.netloc)])
    auth = verify(req, lookup)
    assert auth.presigned
    assert _raises(req, datetime.now(UTC) + timedelta(seconds=200)).message == "Request has expired"
    bad = replace(req, query=parts.query.replace("X-Amz-Expires=100", "X-Amz-Expires=1000"))
    assert _raises(bad, None).code == "SignatureDoesNotMatch"


def test_botocore_presigned_put_with_auth_class() -> None:
    req = _botocore_presign(
        "https://s3.example.com/b/key?uploadId=abc&partNumber=2", 3600, "ap-south-1"
    )
    auth = verify(req, lookup)
    assert auth.region == "ap-south-1" and auth.payload_mode == "unsigned"


def test_botocore_header_auth_class_with_query() -> None:
    """S3SigV4Auth directly: canonical query sorting with repeated and valueless keys."""
    request = AWSRequest(
        method="GET",
        url="http://s3.example.com/b?prefix=z&list-type=2&delimiter=%2F&encoding-type=url",
        headers={"X-Amz-Content-SHA256": EMPTY_SHA256},
    )
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-west-2").add_auth(request)
    req = to_sigv4(request.prepare())[0]
    verify(req, lookup)


def test_result_is_frozen() -> None:
    auth = AuthResult(access_key=None)
    with pytest.raises(AttributeError):
        cast(Any, auth).access_key = "x"  # Any: the assignment its type forbids
    assert "topsecret" not in repr(AuthResult(access_key="a", secret="topsecret"))
