"""ListMultipartUploads through boto3: delimiter grouping, markers, max-uploads, encoding."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import S3Client

BUCKET = "uploads-listing"
KEYS = ["a/1", "a/2", "b", "b", "c/d/e", "c/x", "plain key"]


@pytest.fixture(scope="module")
def uploads(s3: S3Client) -> list[tuple[str, str]]:
    s3.create_bucket(Bucket=BUCKET)
    made = [(k, s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"]) for k in KEYS]
    return sorted(made)


def _page(s3: S3Client, **kw: object) -> tuple[list[tuple[str, str]], list[str], dict[str, Any]]:
    r = s3.list_multipart_uploads(Bucket=BUCKET, **kw)
    return (
        [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])],
        [p["Prefix"] for p in r.get("CommonPrefixes", [])],
        r,
    )


def test_delimiter_groups_into_common_prefixes(
    s3: S3Client, uploads: list[tuple[str, str]]
) -> None:
    listed, prefixes, r = _page(s3, Delimiter="/")
    assert prefixes == ["a/", "c/"]
    assert listed == [u for u in uploads if "/" not in u[0]]
    assert r["Delimiter"] == "/" and not r["IsTruncated"]
    listed, prefixes, _ = _page(s3, Delimiter="/", Prefix="c/")
    assert prefixes == ["c/d/"] and listed == [u for u in uploads if u[0] == "c/x"]
    everything, prefixes, _ = _page(s3)
    assert everything == uploads and prefixes == []


def test_pages_count_prefixes_and_chain(s3: S3Client, uploads: list[tuple[str, str]]) -> None:
    # a/ (prefix), b, b | c/ (prefix), plain key
    seen: list[object] = []
    kw: dict[str, object] = {"Delimiter": "/", "MaxUploads": 2}
    pages = 0
    while True:
        listed, prefixes, r = _page(s3, **kw)
        pages += 1
        assert len(listed) + len(prefixes) <= 2
        merged: list[tuple[str, object]] = [(k, (k, u)) for k, u in listed]
        merged += [(p, p) for p in prefixes]
        seen.extend(item for _, item in sorted(merged, key=lambda m: m[0]))
        if not r["IsTruncated"]:
            break
        kw["KeyMarker"] = r["NextKeyMarker"]
        if "NextUploadIdMarker" in r:
            kw["UploadIdMarker"] = r["NextUploadIdMarker"]
        else:
            kw.pop("UploadIdMarker", None)
    b = [u for u in uploads if u[0] == "b"]
    assert seen == ["a/", b[0], b[1], "c/", ("plain key", uploads[-1][1])]
    assert pages == 3
    first = s3.list_multipart_uploads(Bucket=BUCKET, Delimiter="/", MaxUploads=1)
    assert first["IsTruncated"] and first["NextKeyMarker"] == "a/"
    assert first["MaxUploads"] == 1


def test_encoding_type_url_applies_to_prefixes(
    s3: S3Client, uploads: list[tuple[str, str]]
) -> None:
    r = s3.list_multipart_uploads(Bucket=BUCKET, Delimiter=" ", EncodingType="url")
    # botocore does not decode this operation's fields: the XML's text is seen as sent
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["plain%20"]
    assert r["Delimiter"] == "%20" and r["EncodingType"] == "url"
    assert [u["Key"] for u in r["Uploads"]] == ["a/1", "a/2", "b", "b", "c/d/e", "c/x"]
