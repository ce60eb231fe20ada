"""AWS Signature Version 2 verification for S3 (server side, no I/O), and the choice
between it and Signature Version 4.

Old tools still sign this way: the AWS CLI v1 presigns URLs with it by default
(``?AWSAccessKeyId=..&Expires=..&Signature=..``) and some clients send
``Authorization: AWS AccessKeyId:Signature``. The string to sign is::

    HTTP-Verb \\n Content-MD5 \\n Content-Type \\n Date \\n
    CanonicalizedAmzHeaders CanonicalizedResource

with ``Date`` empty when ``x-amz-date`` is sent, and the ``Expires`` parameter in its
place for presigned URLs; the signature is base64 of its HMAC-SHA1 under the secret key.
The resource is the path-style ``/bucket/key`` (the bucket prepended for
virtual-hosted requests) plus the sub-resources S3 lists, sorted, with their decoded
values.

SigV2 covers less than SigV4: query parameters that are not sub-resources (a
listing's ``prefix``...) and the body (unless ``Content-MD5`` is sent) are not
signed. That is why :attr:`GatewayConfig.sigv2` can turn it off
(docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.sigv4 import (
    DEFAULT_MAX_SKEW,
    MAX_PRESIGN_EXPIRES,
    AuthResult,
    CredentialLookup,
    SigV4Request,
    _index_headers,
    _parse_amz_date,
    aws_uri_encode,
    parse_query,
    verify,
)

#: Query parameters that are part of the signed resource (AWS's list and botocore's)
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "delete", "inventory", "lifecycle",
        "location", "logging", "metrics", "notification", "object-lock", "partNumber",
        "policy", "replication", "requestPayment", "restore", "select", "select-type",
        "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId",
        "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language",
        "response-content-type", "response-expires",
    }
)  # fmt: skip
_QUERY_PARAMS = ("AWSAccessKeyId", "Expires", "Signature")
_TURNED_OFF = (
    "Signature Version 2 is turned off on this gateway (its sigv2 setting); "
    "sign your request with AWS4-HMAC-SHA256 (Signature Version 4)."
)


def is_sigv2(req: SigV4Request) -> bool:
    """Whether ``req`` is signed with Signature Version 2 (header or query)."""
    items = req.headers.items() if isinstance(req.headers, Mapping) else req.headers
    for name, value in items:
        if name.lower() == "authorization" and value.lstrip().startswith("AWS "):
            return True
    if not req.query:
        return False
    return any(name in ("AWSAccessKeyId", "Signature") for name, _ in parse_query(req.query))


def authenticate(
    req: SigV4Request,
    lookup: CredentialLookup,
    *,
    max_skew: timedelta | float = DEFAULT_MAX_SKEW,
    sigv2: bool = True,
    host_bucket: str | None = None,
) -> AuthResult:
    """SigV2 when the request is signed so (refused with ``AccessDenied`` unless
    ``sigv2``), else :func:`sigv4.verify`. ``host_bucket`` is the bucket a
    virtual-hosted request names in its Host header (SigV2 signs ``/bucket/key``)."""
    if not is_sigv2(req):
        return verify(req, lookup, max_skew=max_skew)
    if not sigv2:
        raise s3_error("AccessDenied", _TURNED_OFF)
    return verify_v2(req, lookup, max_skew=max_skew, host_bucket=host_bucket)


def verify_v2(
    req: SigV4Request,
    lookup: CredentialLookup,
    *,
    now: datetime | None = None,
    max_skew: timedelta | float = DEFAULT_MAX_SKEW,
    host_bucket: str | None = None,
) -> AuthResult:
    """Authenticate a SigV2 request by its ``Authorization: AWS`` header or its query.

    Raises :class:`S3Error`: ``InvalidAccessKeyId`` (unknown key),
    ``SignatureDoesNotMatch``, ``RequestTimeTooSkewed`` (header auth),
    ``AccessDenied`` (expired, or expiring more than a week ahead, presigned URLs;
    missing parameters or dates), ``InvalidArgument`` (two mechanisms at once).
    """
    if not isinstance(max_skew, timedelta):
        max_skew = timedelta(seconds=max_skew)
    now = now or req.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    headers = _index_headers(req.headers)
    pairs = parse_query(req.query)
    names = {n for n, _ in pairs}
    authorization = headers.get("authorization")
    v2_query = any(n in names for n in ("AWSAccessKeyId", "Signature"))
    v4_query = any(n in names for n in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"))
    if (
        (authorization is not None and v2_query)
        or (v2_query and v4_query)
        or (authorization is not None and v4_query)
    ):
        raise s3_error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        if len(authorization) != 1:
            raise s3_error("AuthorizationHeaderMalformed", "More than one Authorization header.")
        access_key, provided = _parse_authorization(authorization[0])
        date_line = _check_header_time(headers, now, max_skew)
    else:
        access_key, provided, date_line = _check_query(pairs, now, max_skew)
    secret = lookup(access_key)
    if secret is None:
        raise s3_error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    key = secret.encode()
    first = ""
    for resource in _resources(req, host_bucket):
        to_sign = string_to_sign(req.method, headers, date_line, resource)
        expected = sign_v2(key, to_sign)
        if _equal(expected, provided):
            break
        first = first or to_sign
    else:
        raise s3_error(
            "SignatureDoesNotMatch",
            AWSAccessKeyId=access_key,
            StringToSign=first,
            SignatureProvided=provided[:128],
        )
    signed = ("content-md5", "content-type", "date", *sorted(_amz_headers(headers)))
    return AuthResult(
        access_key=access_key,
        secret=secret,
        payload_mode="unsigned",
        presigned=authorization is None,
        signed_headers=signed,
    )


def sign_v2(key: bytes, to_sign: str) -> str:
    return base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha1).digest()).decode()


def string_to_sign(
    method: str, headers: dict[str, list[str]], date_line: str, resource: str
) -> str:
    def first(name: str) -> str:
        values = headers.get(name)
        return values[0].strip() if values else ""

    amz = _amz_headers(headers)
    lines = [method.upper(), first("content-md5"), first("content-type"), date_line]
    lines += [f"{name}:{amz[name]}" for name in sorted(amz)]
    return "\n".join(lines) + "\n" + resource


def canonical_resource(path: str, raw_query: str, host_bucket: str | None = None) -> str:
    """``/bucket/key`` as signed (``path`` still encoded) and the sorted sub-resources,
    each ``name`` or ``name=value`` with the value decoded as handlers read it."""
    if host_bucket:
        path = "/" + host_bucket + path
    subs = []
    for item in raw_query.split("&"):
        name, eq, _ = item.partition("=")
        if not item or name not in SUBRESOURCES:
            continue
        value = parse_query(item)[0][1]
        subs.append((name, f"{name}={value}" if eq else name))
    if not subs:
        return path
    subs.sort(key=lambda s: s[0])
    return path + "?" + "&".join(s for _, s in subs)


def _resources(req: SigV4Request, host_bucket: str | None) -> list[str]:
    """The resource as sent, then with the path re-encoded per AWS's rules (clients
    differ in which characters they leave unencoded), as for SigV4. A bucket alone is
    also tried with and without its trailing slash: AWS documents ``/bucket/`` and
    botocore signs it, other tools sign the path as sent, and both name the bucket."""
    path = req.path.split("?", 1)[0] or "/"
    if host_bucket:
        path = "/" + host_bucket + path
    normalized = aws_uri_encode(unquote_to_bytes(path), safe="/")
    paths = [path] if normalized == path else [path, normalized]
    bucket_only = path[1:].rstrip("/")
    if bucket_only and "/" not in bucket_only:
        other = "/" + bucket_only if path.endswith("/") else path + "/"
        paths.append(other)
    return [canonical_resource(p, req.query) for p in paths]


def _amz_headers(headers: dict[str, list[str]]) -> dict[str, str]:
    return {
        name: ",".join(v.strip() for v in values)
        for name, values in headers.items()
        if name.startswith("x-amz-")
    }


def _parse_authorization(value: str) -> tuple[str, str]:
    _, _, credential = value.strip().partition(" ")
    access_key, colon, signature = credential.strip().partition(":")
    if not colon or not access_key or not signature:
        raise s3_error(
            "AuthorizationHeaderMalformed",
            'The authorization header is malformed; expecting "AWS AccessKeyId:Signature".',
        )
    return access_key, signature


def _check_header_time(headers: dict[str, list[str]], now: datetime, max_skew: timedelta) -> str:
    """The Date line of the string to sign, once the request's time is within the skew."""
    amz = headers.get("x-amz-date")
    date = headers.get("date")
    raw = amz[0] if amz else date[0] if date else None
    when = _parse_http_date(raw) if raw is not None else None
    if when is None:
        raise s3_error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    if abs(now - when) > max_skew:
        raise s3_error(
            "RequestTimeTooSkewed",
            RequestTime=raw[:64] if raw else "",
            ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=int(max_skew.total_seconds() * 1000),
        )
    return "" if amz else (date[0].strip() if date else "")


def _check_query(
    pairs: list[tuple[str, str]], now: datetime, max_skew: timedelta
) -> tuple[str, str, str]:
    """(access key, signature, Expires) of a presigned URL that has not expired."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in _QUERY_PARAMS:
            if name in params:
                raise s3_error("AccessDenied", f"The query parameter {name} appears twice.")
            params[name] = value
    if any(not params.get(p) for p in _QUERY_PARAMS):
        raise s3_error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and "
            "AWSAccessKeyId parameters",
        )
    expires_raw = params["Expires"]
    if not (expires_raw.isascii() and expires_raw.isdigit()) or len(expires_raw) > 12:
        raise s3_error("AccessDenied", "Expires must be a number of seconds since the epoch")
    # compared as numbers: a far Expires is no datetime (year 10000 and on)
    expires = int(expires_raw)
    server_time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if expires - now.timestamp() > MAX_PRESIGN_EXPIRES + max_skew.total_seconds():
        raise S3Error(
            "AccessDenied",
            f"Expires must be less than a week ({MAX_PRESIGN_EXPIRES} seconds) away",
            fields={"Expires": expires_raw, "ServerTime": server_time},
        )
    if now.timestamp() > expires:
        expired = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            fields={"Expires": expired, "ServerTime": server_time},
        )
    # parse_query reads "+" as a space; base64 has no spaces, so a raw "+" is meant
    signature = params["Signature"].replace(" ", "+")
    return params["AWSAccessKeyId"], signature, expires_raw


def _parse_http_date(value: str) -> datetime | None:
    when = _parse_amz_date(value.strip())
    if when is not None:
        return when
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _equal(expected: str, provided: str) -> bool:
    """Constant time; non-ASCII input (which compare_digest refuses) never matches."""
    if not provided.isascii():
        return False
    return hmac.compare_digest(expected.encode(), provided.encode())
