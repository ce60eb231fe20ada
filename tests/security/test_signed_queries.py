"""The query a handler reads is the query that was signed, and listings encode keys as S3.

The signature covers the query re-encoded from one decoding
(``sigv4.parse_query``), and handlers read that decoding. Before, a raw ``+`` was
signed as ``%2B`` but read as a space, so a request signed for ``prefix=a%2Bb``
("a+b") could be rewritten to ``prefix=a+b`` and list "a b" under the same
signature; the same held for every query parameter (delimiter, ``response-*``,
``versionId``...). Now ``+`` means a space for both, so the rewrite breaks the
signature.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client
from tests.planet import s3raw

BUCKET = "sq-plus"


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    for key in ("a+b", "a b", "a+b/x", "a b/x"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    s3.put_object_tagging(
        Bucket=BUCKET, Key="a+b", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
    )
    return BUCKET


# One request per query parameter a handler reads, with {} where the value goes: the
# value is signed as "a%2Bb" and sent as "a+b".
REWRITES = [
    ("GET", "/sq-plus?list-type=2&prefix={}"),
    ("GET", "/sq-plus?prefix={}"),
    ("GET", "/sq-plus?list-type=2&delimiter={}"),
    ("GET", "/sq-plus?list-type=2&start-after={}"),
    ("GET", "/sq-plus?marker={}"),
    ("GET", "/sq-plus?versions&prefix={}"),
    ("GET", "/sq-plus?versions&key-marker={}"),
    ("GET", "/sq-plus?uploads&prefix={}"),
    ("GET", "/sq-plus/a%2Bb?response-content-type={}"),
    ("GET", "/sq-plus/a%2Bb?response-content-disposition={}"),
    ("GET", "/sq-plus/a%2Bb?versionId={}"),
    ("HEAD", "/sq-plus/a%2Bb?versionId={}"),
    ("GET", "/sq-plus/a%2Bb?tagging&versionId={}"),
    ("DELETE", "/sq-plus/a%2Bb?versionId={}"),
]


@pytest.mark.parametrize(("method", "template"), REWRITES, ids=[f"{m} {t}" for m, t in REWRITES])
def test_rewritten_query_no_longer_verifies(
    planet: PlanetThread, s3: S3Client, bucket: str, method: str, template: str
) -> None:
    signed = s3raw.sign(planet, method, template.format("a%2Bb"), s3raw.EMPTY_SHA256)
    honest = s3raw.send(planet, method, template.format("a%2Bb"), signed.headers)
    assert honest.status != 403 and honest.code != "SignatureDoesNotMatch", honest.body[:300]
    rewritten = s3raw.send(planet, method, template.format("a+b"), signed.headers)
    assert rewritten.status == 403, rewritten.body
    if method != "HEAD":  # a HEAD answer has no body to name the code
        assert rewritten.code == "SignatureDoesNotMatch", rewritten.body
    # nothing was deleted by either DELETE (versionId "a+b" names no version)
    assert s3.get_object(Bucket=bucket, Key="a+b")["Body"].read() == b"a+b"


def test_plus_and_space_read_as_signed(planet: PlanetThread, bucket: str) -> None:
    """``%2B`` is a plus, ``%20`` and ``+`` a space, each read as it was signed."""

    def keys(query: str) -> list[str]:
        reply = s3raw.request(planet, "GET", f"/{bucket}?list-type=2&{query}")
        assert reply.status == 200, reply.body
        return re.findall(r"<Key>([^<]*)</Key>", reply.body.decode())

    assert keys("prefix=a%2Bb") == ["a+b", "a+b/x"]
    assert keys("prefix=a%20b") == ["a b", "a b/x"]


# ---- listings with encoding-type=url, as S3 answers them ----------------------------

ENCODED = "sq-encoding"
ENCODED_KEYS = ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b", "asdf b", "\nnewline"]


@pytest.fixture(scope="module")
def encoded(s3: S3Client) -> str:
    s3.create_bucket(Bucket=ENCODED)
    for key in ENCODED_KEYS:
        s3.put_object(Bucket=ENCODED, Key=key, Body=b"x")
    return ENCODED


def _prefixes(resp: dict[str, Any]) -> list[str]:
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


def _keys(resp: dict[str, Any], field: str = "Contents") -> list[str]:
    return [o["Key"] for o in resp.get(field, [])]


def test_url_encoding_keeps_plus_and_space_apart(s3: S3Client, encoded: str) -> None:
    """ceph's s3-tests ``test_bucket_listv2_encoding_basic``: S3 encodes a space as
    ``%20`` and a plus as ``%2B`` (EncodingType given, so botocore leaves them encoded)."""
    v2 = s3.list_objects_v2(Bucket=encoded, Delimiter="/", EncodingType="url")
    assert _prefixes(v2) == ["foo%2B1/", "foo/", "quux%20ab/"]
    assert _keys(v2) == ["%0Anewline", "asdf%20b", "asdf%2Bb"]
    v1 = s3.list_objects(Bucket=encoded, Delimiter="/", EncodingType="url")
    assert _prefixes(v1) == _prefixes(v2) and _keys(v1) == _keys(v2)
    versions = s3.list_object_versions(Bucket=encoded, Delimiter="/", EncodingType="url")
    assert _prefixes(versions) == _prefixes(v2)
    assert _keys(versions, "Versions") == _keys(v2)


def test_botocore_decodes_listings_back(s3: S3Client, encoded: str) -> None:
    """botocore asks for encoding-type=url itself and decodes: every key comes back whole."""
    listed = s3.list_objects_v2(Bucket=encoded)
    assert sorted(_keys(listed)) == sorted(ENCODED_KEYS)
    assert _keys(s3.list_objects_v2(Bucket=encoded, Prefix="asdf+")) == ["asdf+b"]
    assert _keys(s3.list_objects_v2(Bucket=encoded, Prefix="asdf ")) == ["asdf b"]
    assert _prefixes(s3.list_objects_v2(Bucket=encoded, Prefix="quux", Delimiter="/")) == [
        "quux ab/"
    ]


def test_newline_prefix_round_trips(s3: S3Client, encoded: str) -> None:
    for listed in (
        s3.list_objects_v2(Bucket=encoded, Prefix="\n"),
        s3.list_objects(Bucket=encoded, Prefix="\n"),
    ):
        assert listed["Prefix"] == "\n"
        assert _keys(listed) == ["\nnewline"]
    raw = s3.list_objects_v2(Bucket=encoded, Prefix="\n", EncodingType="url")
    assert raw["Prefix"] == "%0A"
