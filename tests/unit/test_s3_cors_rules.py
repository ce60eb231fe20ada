"""CORS matching and validation as pure functions, table by table."""

from __future__ import annotations

import pytest

from skymesh.gateway.s3 import cors
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.xml import cors_xml, parse_cors
from skymesh.wire.metainfo import CorsRule

RULES = [
    CorsRule(
        id="app",
        allowed_origins=["https://app.example.com", "https://*.example.org"],
        allowed_methods=["GET", "PUT"],
        allowed_headers=["Content-Type", "x-amz-*"],
        expose_headers=["ETag"],
        max_age_seconds=600,
    ),
    CorsRule(allowed_origins=["*"], allowed_methods=["GET", "HEAD"]),
]


@pytest.mark.parametrize(
    ("pattern", "value", "match"),
    [
        ("https://a.com", "https://a.com", True),
        ("https://a.com", "https://a.com.evil", False),
        ("*", "anything", True),
        ("*", "", True),
        ("https://*.a.com", "https://x.a.com", True),
        ("https://*.a.com", "https://a.com", False),
        ("https://*.a.com", "http://x.a.com", False),
        ("x-amz-*", "x-amz-date", True),
        ("x-amz-*", "x-amz-", True),
        ("ab*ba", "aba", False),  # head and tail may not overlap
        ("ab*ba", "abba", True),
    ],
)
def test_wildcard_match(pattern: str, value: str, match: bool) -> None:
    assert cors.wildcard_match(pattern, value) is match


@pytest.mark.parametrize(
    ("origin", "method", "headers", "rule_id"),
    [
        ("https://app.example.com", "PUT", ["content-type"], "app"),
        ("https://app.example.com", "PUT", ["Content-Type", "x-amz-date"], "app"),
        ("https://app.example.com", "PUT", ["authorization"], None),  # header not allowed
        ("https://app.example.com", "GET", ["authorization"], None),  # rule 2 allows no headers
        ("https://app.example.com", "GET", [], "app"),  # first match wins
        ("https://b.example.org", "GET", [], "app"),
        ("https://other.com", "GET", [], ""),  # the wildcard rule
        ("https://other.com", "PUT", [], None),
        ("https://other.com", "DELETE", [], None),
        ("https://app.example.com", "HEAD", [], ""),
    ],
)
def test_find_rule(origin: str, method: str, headers: list[str], rule_id: str | None) -> None:
    rule = cors.find_rule(RULES, origin, method, headers)
    assert (rule.id if rule else None) == rule_id


def test_preflight_headers_named_origin() -> None:
    h = cors.preflight_headers(RULES, "https://app.example.com", "PUT", ["content-type"])
    assert h["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Access-Control-Allow-Methods"] == "GET, PUT"
    assert h["Access-Control-Allow-Headers"] == "content-type"
    assert h["Access-Control-Max-Age"] == "600"
    assert h["Access-Control-Expose-Headers"] == "ETag"
    assert "Origin" in h["Vary"]


def test_preflight_headers_wildcard_and_refusal() -> None:
    h = cors.preflight_headers(RULES, "https://x.net", "GET", [])
    assert h["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in h
    assert "Access-Control-Max-Age" not in h
    with pytest.raises(S3Error) as e:
        cors.preflight_headers(RULES, "https://x.net", "PUT", [])
    assert (e.value.code, e.value.status) == ("CORSResponse", 403)


def test_response_headers() -> None:
    assert cors.response_headers([], "https://x.net", "GET") == {}
    assert cors.response_headers(RULES, "https://x.net", "PUT") == {"Vary": cors.VARY}
    h = cors.response_headers(RULES, "https://app.example.com", "PUT")
    assert h["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_parse_header_list() -> None:
    assert cors.parse_header_list(None) == []
    assert cors.parse_header_list(" Content-Type ,X-Amz-Date,,") == ["content-type", "x-amz-date"]


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        ([], "MalformedXML"),
        ([CorsRule(allowed_origins=[], allowed_methods=["GET"])], "MalformedXML"),
        ([CorsRule(allowed_origins=["*"], allowed_methods=[])], "MalformedXML"),
        ([CorsRule(allowed_origins=["*"], allowed_methods=["PATCH"])], "InvalidRequest"),
        ([CorsRule(allowed_origins=["*.*"], allowed_methods=["GET"])], "InvalidRequest"),
        (
            [CorsRule(allowed_origins=["*"], allowed_methods=["GET"], allowed_headers=["**"])],
            "InvalidRequest",
        ),
        (
            [CorsRule(allowed_origins=["*"], allowed_methods=["GET"], id="x" * 256)],
            "InvalidArgument",
        ),
        ([CorsRule(allowed_origins=["*"], allowed_methods=["GET"])] * 101, "MalformedXML"),
    ],
)
def test_validate_rules_refuses(rules: list[CorsRule], code: str) -> None:
    with pytest.raises(S3Error) as e:
        cors.validate_rules(rules)
    assert e.value.code == code


def test_validate_rules_accepts_and_xml_round_trips() -> None:
    cors.validate_rules(RULES)
    assert parse_cors(cors_xml(RULES)) == RULES


@pytest.mark.parametrize(
    "body",
    [
        b"<CORSConfiguration/>",
        b"<CORSConfiguration><CORSRule><MaxAgeSeconds>x</MaxAgeSeconds></CORSRule></CORSConfiguration>",
        b"<Other/>",
        b"not xml",
    ],
)
def test_parse_cors_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as e:
        parse_cors(body)
    assert e.value.code == "MalformedXML"
