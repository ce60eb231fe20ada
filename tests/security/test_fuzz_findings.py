"""Malformed input against a live gateway: S3's error, never a 500, nothing changed.

The parser fuzzing (``test_fuzz_parsers.py``, ``make fuzz``) found that a Range bound
of more than 4300 digits made ``int()`` raise and that an XML declaration naming an
unknown encoding made expat raise ``LookupError``, both answered ``500 InternalError``;
these tests hold each such finding end to end, with the other malformed inputs a
caller controls: a query that is not UTF-8, broken or oversized XML bodies, and
broken SigV4 headers.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client
from tests.planet import s3raw

BUCKET = "fuzz-findings"
DATA = b"0123456789"


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="ten", Body=DATA)
    s3.put_object(Bucket=BUCKET, Key="keep", Body=b"x")
    return BUCKET


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        ("bytes=" + "9" * 5000 + "-", 416, None),  # start past the end: InvalidRange
        ("bytes=" + "9" * 20 + "-", 416, None),
        ("bytes=0-" + "9" * 5000, 206, DATA),  # end past the end: to the end
        ("bytes=-" + "9" * 5000, 206, DATA),  # a suffix longer than the object
        ("bytes=" + "0" * 5000 + "2-3", 206, b"23"),  # leading zeros are still numbers
        # Arabic-Indic digits (sent as UTF-8): not a range, so the whole object
        ("bytes=\u0663-\u0665".encode().decode("latin-1"), 200, DATA),
    ],
)
def test_range_bounds_of_any_length(
    planet: PlanetThread, bucket: str, header: str, status: int, body: bytes | None
) -> None:
    # Range is left out of the signature (as SDKs may): it is how a proxy could send it
    signed = s3raw.sign(planet, "GET", f"/{bucket}/ten", s3raw.EMPTY_SHA256)
    reply = s3raw.send(planet, "GET", f"/{bucket}/ten", {**signed.headers, "Range": header})
    assert reply.status == status, reply.body[:300]
    if body is not None:
        assert reply.body == body
    else:
        assert reply.code == "InvalidRange"


def test_query_that_is_not_utf8(planet: PlanetThread, bucket: str) -> None:
    reply = s3raw.request(planet, "GET", f"/{bucket}?list-type=2&prefix=%FF")
    assert (reply.status, reply.code) == (400, "InvalidURI")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<Delete><Object><Key>keep</Key></Object>", "MalformedXML"),
        (b"<Delete/>", "MalformedXML"),
        (b"\xff\xfe<Delete/>", "MalformedXML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "keep">]>'
            b"<Delete><Object><Key>&a;</Key></Object></Delete>",
            "MalformedXML",
        ),
        (
            b"<Delete>" + b"<Object><Key>keep</Key></Object>" * 70_000 + b"</Delete>",
            "MaxMessageLengthExceeded",
        ),
        # found by `make fuzz`: expat raised LookupError for an unknown encoding (a 500)
        (
            b'<?xml version="1.0" encoding="U-TF-8"?>'
            b"<Delete><Object><Key>keep</Key></Object></Delete>",
            "MalformedXML",
        ),
    ],
    ids=["unclosed", "empty", "not-utf8", "entity", "oversized", "unknown-encoding"],
)
def test_broken_delete_bodies_delete_nothing(
    planet: PlanetThread, s3: S3Client, bucket: str, body: bytes, code: str
) -> None:
    reply = s3raw.request(planet, "POST", f"/{bucket}?delete", body)
    assert (reply.status, reply.code) == (400, code), reply.body[:300]
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        ("AWS4-HMAC-SHA256", 400, "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 Credential=x", 400, "AuthorizationHeaderMalformed"),
        (
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=0",
            400,
            "AuthorizationHeaderMalformed",
        ),
        ("AWS4-HMAC-SHA256 Credential=\u00e9, SignedHeaders=;, Signature=x", 400, None),
        # SigV2 (GatewayConfig.sigv2): the date is checked before the key
        ("AWS AKID:c2lnbmF0dXJl", 403, "RequestTimeTooSkewed"),
        ("AWS AKID", 400, "AuthorizationHeaderMalformed"),
        ("Bearer " + "x" * 4000, 400, "AuthorizationHeaderMalformed"),
    ],
)
def test_broken_authorization_headers(
    planet: PlanetThread, bucket: str, authorization: str, status: int, code: str | None
) -> None:
    headers = {
        "Authorization": authorization,
        "x-amz-date": "20260101T000000Z",
        "x-amz-content-sha256": s3raw.EMPTY_SHA256,
    }
    reply = s3raw.send(planet, "GET", f"/{bucket}/ten", headers)
    assert reply.status == status, reply.body[:300]
    if code is not None:
        assert reply.code == code


@pytest.mark.parametrize("value", ["9" * 20, "9" * 5000, "-1", "\u0663", "1e3", " 5"])
@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&max-keys={}",
        "max-keys={}",
        "versions&max-keys={}",
        "uploads&max-uploads={}",
    ],
)
def test_integer_parameters_out_of_range(
    planet: PlanetThread, bucket: str, query: str, value: str
) -> None:
    reply = s3raw.request(planet, "GET", f"/{bucket}?" + query.format(quote(value)))
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply.body[:300]


@pytest.mark.parametrize("value", ["9" * 20, "9" * 5000, "-1", "\u0663"])
@pytest.mark.parametrize("name", ["max-parts", "part-number-marker"])
def test_list_parts_integers_out_of_range(
    planet: PlanetThread, s3: S3Client, bucket: str, name: str, value: str
) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    path = f"/{bucket}/mp?uploadId={quote(upload)}&{name}={quote(value)}"
    reply = s3raw.request(planet, "GET", path)
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply.body[:300]
