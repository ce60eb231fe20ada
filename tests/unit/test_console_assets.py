"""The consoles' files ship in the package and nothing else is served from it."""

from __future__ import annotations

import pytest

from skymesh import console


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
