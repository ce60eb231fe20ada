"""S3 CORS, as pure functions: check a bucket's rules, match a request, build the headers.

Browsers ask before a cross-origin request (a preflight ``OPTIONS`` naming the
method and headers it means to send) and then send it with an ``Origin`` header;
S3 answers both from the bucket's CORS rules. The first rule whose origin,
method and every requested header match wins. An ``AllowedOrigin`` or
``AllowedHeader`` may hold one ``*``, which matches any run of characters;
headers compare case-insensitively, origins exactly. No I/O here: the gateway
fetches the rules and table-driven tests pin the matching down.
"""

from __future__ import annotations

from collections.abc import Sequence

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.wire.metainfo import CorsRule

METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
MAX_RULES = 100
MAX_ID = 255
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
NOT_ALLOWED = (
    "This CORS request is not allowed. This is usually because the evalution of Origin, "
    "request method / Access-Control-Request-Method or Access-Control-Request-Headers are "
    "not whitelisted by the resource's CORS spec."
)


def cors_error(message: str = NOT_ALLOWED) -> S3Error:
    """S3's preflight refusal: 403 ``CORSResponse``."""
    return S3Error("CORSResponse", message, status=403)


def validate_rules(rules: Sequence[CorsRule]) -> None:
    """Raise S3's error for a configuration PutBucketCors must refuse."""
    if not rules:
        raise s3_error("MalformedXML", "The XML you provided was not well-formed: no CORSRule.")
    if len(rules) > MAX_RULES:
        raise s3_error("MalformedXML", f"A CORS configuration holds at most {MAX_RULES} rules.")
    for rule in rules:
        if not rule.allowed_origins or not rule.allowed_methods:
            raise s3_error(
                "MalformedXML",
                "The XML you provided was not well-formed: each CORSRule needs an "
                "AllowedOrigin and an AllowedMethod.",
            )
        if len(rule.id) > MAX_ID:
            raise s3_error("InvalidArgument", f"A CORSRule ID is at most {MAX_ID} characters.")
        for method in rule.allowed_methods:
            if method not in METHODS:
                raise s3_error(
                    "InvalidRequest",
                    "Found unsupported HTTP method in CORS config. Unsupported method is "
                    f"{method[:32]}",
                )
        for origin in rule.allowed_origins:
            if origin.count("*") > 1:
                raise s3_error(
                    "InvalidRequest",
                    f'AllowedOrigin "{origin[:200]}" can not have more than one wildcard.',
                )
        for header in rule.allowed_headers:
            if header.count("*") > 1:
                raise s3_error(
                    "InvalidRequest",
                    f'AllowedHeader "{header[:200]}" can not have more than one wildcard.',
                )
        if rule.max_age_seconds is not None and rule.max_age_seconds < 0:
            raise s3_error("InvalidArgument", "MaxAgeSeconds must not be negative.")


def wildcard_match(pattern: str, value: str) -> bool:
    """``pattern`` with at most one ``*`` (any run of characters, empty included)."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def parse_header_list(value: str | None) -> list[str]:
    """``Access-Control-Request-Headers``: comma-separated names, lower-cased."""
    if not value:
        return []
    return [h.strip().lower() for h in value.split(",") if h.strip()]


def find_rule(
    rules: Sequence[CorsRule], origin: str, method: str, headers: Sequence[str] = ()
) -> CorsRule | None:
    """The first rule that allows ``origin`` to send ``method`` with ``headers``."""
    for rule in rules:
        if method not in rule.allowed_methods:
            continue
        if not any(wildcard_match(o, origin) for o in rule.allowed_origins):
            continue
        allowed = [h.lower() for h in rule.allowed_headers]
        if all(any(wildcard_match(a, h.lower()) for a in allowed) for h in headers):
            return rule
    return None


def _common(rule: CorsRule, origin: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if "*" in rule.allowed_origins:
        out["Access-Control-Allow-Origin"] = "*"
    else:
        # a named origin may send credentials (cookies, HTTP auth), as S3 allows
        out["Access-Control-Allow-Origin"] = origin
        out["Access-Control-Allow-Credentials"] = "true"
    out["Access-Control-Allow-Methods"] = ", ".join(rule.allowed_methods)
    if rule.expose_headers:
        out["Access-Control-Expose-Headers"] = ", ".join(rule.expose_headers)
    if rule.max_age_seconds is not None:
        out["Access-Control-Max-Age"] = str(rule.max_age_seconds)
    out["Vary"] = VARY
    return out


def preflight_headers(
    rules: Sequence[CorsRule], origin: str, method: str, headers: Sequence[str]
) -> dict[str, str]:
    """The answer to a preflight, or ``CORSResponse`` (403) when no rule allows it."""
    rule = find_rule(rules, origin, method, headers)
    if rule is None:
        raise cors_error()
    out = _common(rule, origin)
    if headers:
        out["Access-Control-Allow-Headers"] = ", ".join(headers)
    return out


def response_headers(rules: Sequence[CorsRule], origin: str, method: str) -> dict[str, str]:
    """Headers for a real request carrying ``Origin``: empty when no rule matches.

    ``Vary`` is set whenever the bucket has rules, so a cache never serves one
    origin's answer to another.
    """
    if not rules:
        return {}
    rule = find_rule(rules, origin, method)
    if rule is None:
        return {"Vary": VARY}
    return _common(rule, origin)
