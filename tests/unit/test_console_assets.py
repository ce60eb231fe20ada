"""The consoles' files ship in the package, nothing else is served from it, and the
gateway takes only its console's path from S3."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from skymesh import console
from skymesh.gateway import console as gateway_console


@pytest.mark.parametrize("which", ["admin", "tenant"])
def test_each_console_has_its_page_and_shared_files(which: console.Console) -> None:
    page = console.asset(which, "")
    assert page is not None and page[1] == "text/html; charset=utf-8"
    assert b"console.css" in page[0] and b"charts.js" in page[0]
    for name in ("console.css", "charts.js"):  # from static/common
        assert console.asset(which, name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "../__init__.py",
        "..",
        "common/charts.js",
        "tenant.js/",
        ".hidden.js",
        "index",
        "x.py",
        "nope.js",
    ],
)
def test_only_shipped_files_by_their_bare_names(name: str) -> None:
    assert console.asset("tenant", name) is None
    assert console.response("tenant", name).status == 404


def test_pages_refuse_framing_and_foreign_scripts() -> None:
    resp = console.response("admin", "index.html")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("method", "host", "path", "claimed"),
    [
        ("GET", "127.0.0.1:9000", "/_console/", True),
        ("GET", "127.0.0.1:9000", "/_console/?X-Amz-Signature=ab", False),  # S3's, presigned
        ("HEAD", "s3.example.com", "/_console/s3.js", True),
        ("GET", "127.0.0.1:9000", "/_console", True),
        ("PUT", "127.0.0.1:9000", "/_console/x", False),  # S3's, to refuse
        ("GET", "127.0.0.1:9000", "/_consolex/", False),
        ("GET", "127.0.0.1:9000", "/console/", False),  # the bucket "console"
        ("GET", "photos.s3.example.com", "/_console/", False),  # a key of bucket "photos"
    ],
)
def test_the_gateway_claims_only_its_console_path(
    method: str, host: str, path: str, claimed: bool
) -> None:
    request = make_mocked_request(method, path, headers={"Host": host})
    assert gateway_console.claims(request, ["s3.example.com"]) is claimed
    signed = make_mocked_request(method, path, headers={"Host": host, "Authorization": "AWS4"})
    assert not gateway_console.claims(signed, ["s3.example.com"])  # an S3 client's
