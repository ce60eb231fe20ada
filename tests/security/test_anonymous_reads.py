"""What an unsigned caller of a public bucket may not do or learn.

* ``response-*`` overrides are for signed requests only, as in S3: otherwise anyone
  could have a public object served as ``text/html`` from the gateway's origin, or
  as a download of any name.
* The Owner element of a listing is the owning project's id: S3 shows it to the
  owner only, never to an anonymous caller nor to another project reading a public
  bucket.
"""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from skymesh.config import Credential
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client

BUCKET = "anon-reads"
_http = urllib3.PoolManager(retries=False)


@pytest.fixture(scope="module")
def public(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET, ACL="public-read")
    s3.put_object(Bucket=BUCKET, Key="page", Body=b"<p>hi</p>", ACL="public-read")
    return BUCKET


@pytest.fixture(scope="module")
def anon(planet: PlanetThread) -> S3Client:
    return planet.boto3(signature_version=UNSIGNED)


@pytest.fixture(scope="module")
def other(planet: PlanetThread) -> S3Client:
    cred = planet.run(planet.planet.create_credential("anon-reads-other"))
    assert planet.planet.gateway is not None
    planet.planet.gateway.add_credential(cred)
    return planet.boto3(cred)


def _owner_id(planet: PlanetThread) -> str:
    cred: Credential | None = planet.planet.credential
    assert cred is not None
    return cred.project_id


OVERRIDES = {
    "ResponseContentType": "text/html",
    "ResponseContentDisposition": 'attachment; filename="x.exe"',
    "ResponseCacheControl": "no-cache",
    "ResponseContentLanguage": "de",
    "ResponseContentEncoding": "gzip",
    "ResponseExpires": "Thu, 01 Dec 1994 16:00:00 GMT",
}


@pytest.mark.parametrize("param", list(OVERRIDES))
def test_anonymous_get_may_not_override_response_headers(
    anon: S3Client, public: str, param: str
) -> None:
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=public, Key="page", **{param: OVERRIDES[param]})
    err = e.value.response["Error"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Code"] == "InvalidRequest"
    assert err["Message"] == (
        "Request specific response headers cannot be used for anonymous GET requests."
    )
    # the plain anonymous read still works
    assert anon.get_object(Bucket=public, Key="page")["Body"].read() == b"<p>hi</p>"


def test_raw_anonymous_get_with_override(planet: PlanetThread, public: str) -> None:
    url = f"{planet.planet.endpoint}/{public}/page?response-content-type=text%2Fhtml"
    resp = _http.request("GET", url)
    assert resp.status == 400 and b"<Code>InvalidRequest</Code>" in resp.data
    assert resp.headers.get("Content-Type") != "text/html"
    assert _http.request("HEAD", url).status == 400


def test_signed_gets_may_override(s3: S3Client, other: S3Client, public: str) -> None:
    """The owner, and another project reading the public object, sign: S3 allows both."""
    for client in (s3, other):
        got = client.get_object(Bucket=public, Key="page", **OVERRIDES)
        headers = got["ResponseMetadata"]["HTTPHeaders"]
        assert headers["content-type"] == "text/html"
        assert headers["content-disposition"] == OVERRIDES["ResponseContentDisposition"]


def _owners(listing: dict[str, Any]) -> list[Any]:
    found = [o.get("Owner") for o in listing.get("Contents", [])]
    found += [v.get("Owner") for v in listing.get("Versions", [])]
    return [o for o in found if o is not None]


def test_listings_hide_the_owner_from_anonymous_callers(
    planet: PlanetThread, anon: S3Client, public: str
) -> None:
    project = _owner_id(planet)
    assert _owners(anon.list_objects(Bucket=public)) == []
    assert _owners(anon.list_objects_v2(Bucket=public, FetchOwner=True)) == []
    for query in ("", "?list-type=2&fetch-owner=true"):
        raw = _http.request("GET", f"{planet.planet.endpoint}/{public}{query}")
        assert raw.status == 200
        assert project.encode() not in raw.data, raw.data


def test_listings_hide_the_owner_from_other_projects(
    planet: PlanetThread, other: S3Client, public: str
) -> None:
    assert _owners(other.list_objects(Bucket=public)) == []
    assert _owners(other.list_objects_v2(Bucket=public, FetchOwner=True)) == []


def test_the_owner_still_sees_itself(planet: PlanetThread, s3: S3Client, public: str) -> None:
    project = _owner_id(planet)
    owner = {"ID": project, "DisplayName": project}
    assert _owners(s3.list_objects(Bucket=public)) == [owner]
    assert _owners(s3.list_objects_v2(Bucket=public, FetchOwner=True)) == [owner]
    assert _owners(s3.list_object_versions(Bucket=public)) == [owner]


@pytest.mark.parametrize("query", ["?acl", "?versions", "/page?acl", "?uploads", "?tagging"])
def test_anonymous_owner_revealing_reads_are_denied(
    planet: PlanetThread, public: str, query: str
) -> None:
    """GetBucketAcl, GetObjectAcl, ListObjectVersions... name the owner: S3 denies them to
    anonymous callers even on a public-read bucket, and the denial names no one."""
    resp = _http.request("GET", f"{planet.planet.endpoint}/{public}{query}")
    assert resp.status == 403 and b"<Code>AccessDenied</Code>" in resp.data
    assert _owner_id(planet).encode() not in resp.data
