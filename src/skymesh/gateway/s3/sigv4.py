"""AWS Signature Version 4 verification for S3 (server side, no I/O).

The gateway hands :func:`verify` a plain :class:`SigV4Request` built from whatever
HTTP server it runs on, so the rules here are testable with signatures made by
botocore and by AWS's published examples. Two S3 quirks shape this module:

* S3 signs the path encoded once, as the client saw the key, and does not normalise
  it. Clients differ in which characters they leave unencoded on the wire (``$``,
  ``:``...), so the path is decoded and re-encoded per AWS's rules first and, only if
  that fails to match, tried exactly as sent.
* The payload hash in the canonical request is the ``x-amz-content-sha256`` header,
  not the hash of the body: the body streams in later. The caller checks a hex hash as
  it reads (:func:`verify_payload_sha256`) and ``aws-chunked`` bodies are checked
  chunk by chunk by :mod:`skymesh.gateway.s3.chunked`, which needs the signing key,
  scope and seed signature returned in :class:`AuthResult`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from skymesh.gateway.s3.errors import S3Error, s3_error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_PRESIGN_EXPIRES = 604800
DEFAULT_MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

PayloadMode = Literal[
    "signed",
    "unsigned",
    "streaming-signed",
    "streaming-unsigned-trailer",
    "streaming-signed-trailer",
]

_NAMED_PAYLOADS: dict[str, PayloadMode] = {
    UNSIGNED_PAYLOAD: "unsigned",
    STREAMING_SIGNED: "streaming-signed",
    STREAMING_UNSIGNED_TRAILER: "streaming-unsigned-trailer",
    STREAMING_SIGNED_TRAILER: "streaming-signed-trailer",
}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# ASCII digits only: re's \d also takes other scripts' digits, which int() reads, so
# a date in Arabic-Indic digits would pass for today's
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_DATE8 = re.compile(r"[0-9]{8}")
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
"""A case-insensitive multi-dict (aiohttp's ``request.headers``), a dict or pairs."""

CredentialLookup = Callable[[str], str | None]
"""Access key id -> secret key, or None when the key is unknown."""


@dataclass(frozen=True, slots=True)
class SigV4Request:
    """What SigV4 covers of a request, independent of the HTTP server.

    ``path`` is the raw path as sent on the request line, still percent-encoded and
    without the query string; ``query`` the raw query string without ``?``. Decoded
    forms would lose what the client signed. ``now`` is the server's time for the
    skew and expiry checks (default: the clock when :func:`verify` runs).
    """

    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Who signed a request and what remains to check of its body.

    ``access_key`` is None for anonymous requests (no Authorization header and no
    presigned query): the caller decides, and denies. For ``payload_mode`` "signed",
    ``payload_sha256`` is the lowercase hex hash the body must have; for the
    streaming modes the chunk decoder needs ``signing_key``, ``timestamp``, ``scope``
    and ``seed_signature`` (the request's own signature, which chains into the first
    chunk's).
    """

    access_key: str | None
    secret: str | None = field(default=None, repr=False)
    payload_mode: PayloadMode = "unsigned"
    payload_sha256: str | None = None
    signing_key: bytes = field(default=b"", repr=False)
    seed_signature: str = ""
    timestamp: str = ""
    scope: str = ""
    region: str = ""
    presigned: bool = False
    signed_headers: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.access_key is None

    @property
    def streaming(self) -> bool:
        return self.payload_mode.startswith("streaming-")


@lru_cache(maxsize=1024)
def derive_signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The SigV4 signing key; cached because it changes once a day per key and region."""
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, TERMINATOR)


def sign_string(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison that also survives non-ASCII input (compare_digest
    raises on non-ASCII str)."""
    if not provided.isascii():
        return False
    return hmac.compare_digest(expected, provided.lower())


def _checked(
    req: SigV4Request,
    pairs: list[tuple[str, str]],
    headers: dict[str, list[str]],
    signed: tuple[str, ...],
    signed_headers_line: str,
    payload_hash: str,
    *,
    access_key: str,
    secret: str,
    date: str,
    region: str,
    timestamp: str,
    provided: str,
    presigned: bool,
) -> AuthResult:
    """Recompute the signature the same way for header and presigned auth, and compare."""
    mode, sha = _payload_mode(payload_hash)
    scope = f"{date}/{region}/{SERVICE}/{TERMINATOR}"
    key = derive_signing_key(secret, date, region)
    query = _canonical_query(pairs, drop_signature=presigned)
    canonical_headers = _canonical_headers(headers, signed)
    signature, canonical, to_sign = _match_signature(
        req,
        query,
        canonical_headers,
        signed_headers_line,
        payload_hash,
        timestamp,
        scope,
        key,
        provided,
    )
    if signature is None:
        raise _signature_mismatch(access_key, to_sign, canonical, provided)
    return AuthResult(
        access_key=access_key,
        secret=secret,
        payload_mode=mode,
        payload_sha256=sha,
        signing_key=key,
        seed_signature=signature,
        timestamp=timestamp,
        scope=scope,
        region=region,
        presigned=presigned,
        signed_headers=signed,
    )


def verify(
    req: SigV4Request,
    lookup: CredentialLookup,
    now: datetime | None = None,
    max_skew: timedelta | float = DEFAULT_MAX_SKEW,
) -> AuthResult:
    """Authenticate ``req`` by its Authorization header or its presigned query.

    Returns an anonymous :class:`AuthResult` when the request carries neither. Raises
    :class:`S3Error` (AWS's codes: ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``,
    ``RequestTimeTooSkewed``, ``AuthorizationHeaderMalformed``,
    ``AuthorizationQueryParametersError``, ``AccessDenied``...) otherwise. ``now``
    overrides ``req.now``; ``max_skew`` is a timedelta or seconds.
    """
    if not isinstance(max_skew, timedelta):
        max_skew = timedelta(seconds=max_skew)
    if now is None:
        now = req.now
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    headers = _index_headers(req.headers)
    pairs = parse_query(req.query)
    names = {k for k, _ in pairs}
    authorization = headers.get("authorization")
    presigned = any(p in names for p in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"))
    if "AWSAccessKeyId" in names and "Signature" in names:
        raise _unsupported_mechanism()
    if authorization is not None and presigned:
        raise s3_error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        if len(authorization) != 1:
            raise s3_error("AuthorizationHeaderMalformed", "More than one Authorization header.")
        return _verify_header(req, headers, pairs, authorization[0], lookup, now, max_skew)
    if presigned:
        return _verify_presigned(req, headers, pairs, lookup, now, max_skew)
    mode: PayloadMode = "unsigned"
    sha: str | None = None
    declared = headers.get("x-amz-content-sha256")
    if declared:
        with contextlib.suppress(S3Error):
            mode, sha = _payload_mode(declared[0])
    return AuthResult(access_key=None, payload_mode=mode, payload_sha256=sha)


def verify_payload_sha256(auth: AuthResult, computed_hex: str) -> None:
    """Check a body hash computed while streaming against the signed one.

    Call it once the whole body is read, before committing anything, for requests
    whose ``payload_mode`` is "signed".
    """
    if auth.payload_sha256 is None:
        return
    if not hmac.compare_digest(auth.payload_sha256, computed_hex.lower()):
        raise s3_error(
            "XAmzContentSHA256Mismatch",
            ClientComputedContentSHA256=auth.payload_sha256,
            S3ComputedContentSHA256=computed_hex.lower(),
        )


# -- header auth ----------------------------------------------------------------------


def _verify_header(
    req: SigV4Request,
    headers: dict[str, list[str]],
    pairs: list[tuple[str, str]],
    authorization: str,
    lookup: CredentialLookup,
    now: datetime,
    max_skew: timedelta,
) -> AuthResult:
    fields = _parse_authorization(authorization)
    access_key, date, region = _parse_credential(
        fields["Credential"],
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; ",
    )
    signed_headers_line = fields["SignedHeaders"]
    signed = _parse_signed_headers(signed_headers_line, "AuthorizationHeaderMalformed")
    provided = fields["Signature"]

    timestamp, when = _request_time(headers)
    if timestamp[:8] != date:
        raise s3_error(
            "AuthorizationHeaderMalformed",
            f'The authorization header is malformed; Invalid credential date "{date}". '
            f'This date is not the same as X-Amz-Date: "{timestamp[:8]}".',
        )
    secret = lookup(access_key)
    if secret is None:
        raise s3_error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    if abs(now - when) > max_skew:
        raise s3_error(
            "RequestTimeTooSkewed",
            RequestTime=timestamp,
            ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=int(max_skew.total_seconds() * 1000),
        )
    declared = headers.get("x-amz-content-sha256")
    if not declared:
        raise s3_error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    payload_hash = declared[0]
    _payload_mode(payload_hash)  # refuses an unknown payload mode early
    _check_all_amz_headers_signed(headers, signed)

    return _checked(
        req,
        pairs,
        headers,
        signed,
        signed_headers_line,
        payload_hash,
        access_key=access_key,
        secret=secret,
        date=date,
        region=region,
        timestamp=timestamp,
        provided=provided,
        presigned=False,
    )


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        if algorithm == "AWS":
            raise _unsupported_mechanism()
        if algorithm == "AWS4-ECDSA-P256-SHA256":
            raise s3_error("NotImplemented", "Signature Version 4A is not supported.")
        raise s3_error(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; the authorization mechanism "
            f"{algorithm[:40]!r} is not supported, use {ALGORITHM}.",
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, val = item.strip().partition("=")
        if not eq or not name:
            raise s3_error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; {item.strip()[:60]!r} is not "
                "a name=value pair.",
            )
        if name in fields:
            raise s3_error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; {name} appears twice.",
            )
        fields[name] = val.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise s3_error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; it has no {required}.",
            )
    return fields


def _request_time(headers: dict[str, list[str]]) -> tuple[str, datetime]:
    """The request's x-amz-date (or Date header as SigV4 basic ISO 8601) and its time."""
    amz = headers.get("x-amz-date")
    if amz:
        when = _parse_amz_date(amz[0])
        if when is not None:
            return amz[0], when
    else:
        date = headers.get("date")
        if date:
            try:
                parsed = parsedate_to_datetime(date[0])
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                parsed = parsed.astimezone(UTC)
                return parsed.strftime(AMZ_DATE_FORMAT), parsed
    raise s3_error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def _check_all_amz_headers_signed(headers: dict[str, list[str]], signed: tuple[str, ...]) -> None:
    """x-amz-* headers change what a request does (copy source, ACL, metadata), so an
    unsigned one could be injected in transit; AWS refuses them and so do we."""
    unsigned = sorted(n for n in headers if n.startswith("x-amz-") and n not in signed)
    if unsigned:
        raise s3_error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )


# -- presigned URLs --------------------------------------------------------------------


def _verify_presigned(
    req: SigV4Request,
    headers: dict[str, list[str]],
    pairs: list[tuple[str, str]],
    lookup: CredentialLookup,
    now: datetime,
    max_skew: timedelta,
) -> AuthResult:
    code = "AuthorizationQueryParametersError"
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("X-Amz-"):
            if name in params:
                raise s3_error(code, f"The query parameter {name} appears more than once.")
            params[name] = value
    if any(not params.get(p) for p in _PRESIGN_PARAMS):
        raise s3_error(
            code,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.",
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise s3_error(code, f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    access_key, date, region = _parse_credential(
        params["X-Amz-Credential"], code, "Error parsing the X-Amz-Credential parameter; "
    )
    signed_headers_line = params["X-Amz-SignedHeaders"]
    signed = _parse_signed_headers(signed_headers_line, code)
    timestamp = params["X-Amz-Date"]
    when = _parse_amz_date(timestamp)
    if when is None:
        raise s3_error(
            code, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    if timestamp[:8] != date:
        raise s3_error(
            code,
            f'Invalid credential date "{date}". This date is not the same as '
            f'X-Amz-Date: "{timestamp[:8]}".',
        )
    expires_raw = params["X-Amz-Expires"]
    digits = expires_raw.removeprefix("-")
    if not digits.isdigit() or not digits.isascii():
        raise s3_error(code, "X-Amz-Expires should be a number")
    expires = int(expires_raw)
    # a number out of range is S3's 403 AccessDenied, not a malformed request
    if expires < 1:
        raise s3_error("AccessDenied", "X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise s3_error(
            "AccessDenied",
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}",
        )
    secret = lookup(access_key)
    if secret is None:
        raise s3_error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    server_time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expiry = when + timedelta(seconds=expires)
    if now > expiry:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            fields={
                "X-Amz-Expires": expires,
                "Expires": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ServerTime": server_time,
            },
        )
    if when - now > max_skew:
        raise S3Error(
            "AccessDenied",
            "Request is not valid yet",
            fields={"X-Amz-Date": timestamp, "ServerTime": server_time},
        )
    payload_hash = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    mode, _ = _payload_mode(payload_hash)
    if mode not in ("signed", "unsigned"):
        raise s3_error(code, "Presigned requests cannot use a streaming payload.")
    _check_all_amz_headers_signed(headers, signed)

    provided = params["X-Amz-Signature"]
    return _checked(
        req,
        pairs,
        headers,
        signed,
        signed_headers_line,
        payload_hash,
        access_key=access_key,
        secret=secret,
        date=date,
        region=region,
        timestamp=timestamp,
        provided=provided,
        presigned=True,
    )


# -- shared pieces ---------------------------------------------------------------------


def _match_signature(
    req: SigV4Request,
    query: str,
    canonical_headers: str,
    signed_headers_line: str,
    payload_hash: str,
    timestamp: str,
    scope: str,
    key: bytes,
    provided: str,
) -> tuple[str | None, str, str]:
    """Try the canonical path forms in turn; return (signature or None, first canonical
    request, first string to sign) so a mismatch can report what we computed."""
    first: tuple[str, str] | None = None
    for uri in _canonical_uris(req.path):
        canonical = "\n".join(
            (
                req.method.upper(),
                uri,
                query,
                canonical_headers,
                signed_headers_line,
                payload_hash,
            )
        )
        to_sign = "\n".join(
            (ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        expected = sign_string(key, to_sign)
        if signatures_equal(expected, provided):
            return expected, canonical, to_sign
        if first is None:
            first = (canonical, to_sign)
    assert first is not None
    return None, first[0], first[1]


def _canonical_uris(raw_path: str) -> list[str]:
    path = raw_path.split("?", 1)[0] or "/"
    normalized = aws_uri_encode(unquote_to_bytes(path), safe="/")
    return [normalized] if normalized == path else [normalized, path]


def aws_uri_encode(data: bytes | str, safe: str = "") -> str:
    """AWS's UriEncode: every byte but ``A-Za-z0-9-._~`` (and ``safe``) as %XX."""
    return quote(data, safe=safe)


def parse_query(raw: str) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs: what the signature covers and handlers read.

    One decoding for both, so that no rewriting of the query can keep a signature
    and change what a handler acts on: the canonical query is these pairs
    re-encoded. A ``+`` is a space, as S3 reads it (and HTML forms, MinIO, Garage):
    ``prefix=a+b`` is "a b" and signs as ``a%20b``, so a request signed for
    ``prefix=a%2Bb`` ("a+b") and rewritten to ``a+b`` no longer verifies. A name
    without ``=`` has the value "" (``?acl``). Bytes that are not UTF-8 are
    ``InvalidURI``.
    """
    pairs = []
    try:
        for item in raw.split("&"):
            if item:
                name, _, value = item.replace("+", " ").partition("=")
                pairs.append(
                    (
                        unquote_to_bytes(name).decode("utf-8"),
                        unquote_to_bytes(value).decode("utf-8"),
                    )
                )
    except UnicodeDecodeError:
        raise s3_error(
            "InvalidURI", "The query string is not valid percent-encoded UTF-8."
        ) from None
    return pairs


def _canonical_query(pairs: list[tuple[str, str]], *, drop_signature: bool) -> str:
    encoded = sorted(
        (aws_uri_encode(name), aws_uri_encode(value))
        for name, value in pairs
        if not (drop_signature and name == "X-Amz-Signature")
    )
    return "&".join(f"{n}={v}" for n, v in encoded)


def _canonical_headers(headers: dict[str, list[str]], signed: tuple[str, ...]) -> str:
    lines = []
    for name in signed:
        values = headers.get(name, [])
        lines.append(name + ":" + ",".join(" ".join(v.split()) for v in values) + "\n")
    return "".join(lines)


def _parse_signed_headers(line: str, code: str) -> tuple[str, ...]:
    names = tuple(n.lower() for n in line.split(";"))
    if any(not n for n in names):
        raise s3_error(code, f"The SignedHeaders list {line[:200]!r} is malformed.")
    if "host" not in names:
        raise s3_error(code, "The SignedHeaders list must include host.")
    return names


def _parse_credential(credential: str, code: str, prefix: str) -> tuple[str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0]:
        raise s3_error(
            code,
            prefix + 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/'
            'SERVICE/aws4_request".',
        )
    access_key, date, region, service, terminator = parts
    if not _DATE8.fullmatch(date):
        raise s3_error(
            code,
            prefix + f'incorrect date format "{date[:20]}". This date in the '
            'credential must be in the format "yyyyMMdd".',
        )
    if not region:
        raise s3_error(code, prefix + "the region in the Credential is empty.")
    if service != SERVICE:
        raise s3_error(
            code, prefix + f'incorrect service "{service[:40]}". This endpoint belongs to "s3".'
        )
    if terminator != TERMINATOR:
        raise s3_error(
            code,
            prefix + f'incorrect terminal "{terminator[:40]}". This endpoint uses "aws4_request".',
        )
    return access_key, date, region


def _parse_amz_date(value: str) -> datetime | None:
    """``YYYYMMDDTHHMMSSZ`` by slicing: strptime costs a visible share of a small request."""
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime(
            int(value[0:4]), int(value[4:6]), int(value[6:8]),
            int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:  # a month 13, a 30th of February
        return None


def _payload_mode(value: str) -> tuple[PayloadMode, str | None]:
    mode = _NAMED_PAYLOADS.get(value)
    if mode is not None:
        return mode, None
    if _HEX64.fullmatch(value):
        return "signed", value.lower()
    raise s3_error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value[:100],
    )


def _index_headers(headers: Headers) -> dict[str, list[str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    index: dict[str, list[str]] = {}
    for name, value in items:
        index.setdefault(name.lower(), []).append(value)
    return index


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _unsupported_mechanism() -> S3Error:
    return s3_error(
        "InvalidRequest",
        f"The authorization mechanism you have provided is not supported. Please use {ALGORITHM}.",
    )


def _signature_mismatch(access_key: str, to_sign: str, canonical: str, provided: str) -> S3Error:
    # The canonical request and string to sign are what we computed from the request
    # itself (no secret), and are how SDK users find which part they signed differently.
    return s3_error(
        "SignatureDoesNotMatch",
        AWSAccessKeyId=access_key,
        StringToSign=to_sign,
        SignatureProvided=provided[:128],
        CanonicalRequest=canonical,
    )
