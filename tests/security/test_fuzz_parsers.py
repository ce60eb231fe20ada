"""Property-based fuzzing of every parser that reads what a caller sends.

The gateway's XML bodies, ``aws-chunked`` framing, SigV4 canonicalisation and
header parsing, the Range header (gateway and node), the S3 router, ``x-amz-tagging``
and the OpenAI file ids. Properties:

* nothing but the documented error type escapes (``S3Error`` in the S3 gateway,
  ``BadRequest`` on the node, ``OpenAIError`` in the OpenAI API): anything else is a
  500 and, with a traceback per request, a cheap way to flood logs;
* what an encoder writes, the parser reads back;
* equivalent encodings of a request canonicalise alike (its signature verifies) and
  different requests differently (it does not).

In CI each test runs a bounded number of examples (``FUZZ_EXAMPLES`` below). ``make
fuzz`` runs the same tests with ``SKYMESH_FUZZ_EXAMPLES`` set to many more.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import string
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from skymesh.errors import BadRequest
from skymesh.gateway.openai.errors import OpenAIError
from skymesh.gateway.openai.files import _filename, file_id, parse_file_id
from skymesh.gateway.s3.chunked import AwsChunkedDecoder, decoded_content_length
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.handlers.objects import parse_range
from skymesh.gateway.s3.handlers.tagging import tags_from_header
from skymesh.gateway.s3.router import route
from skymesh.gateway.s3.sigv4 import (
    AuthResult,
    PayloadMode,
    SigV4Request,
    derive_signing_key,
    parse_query,
    verify,
)
from skymesh.gateway.s3.xml import (
    acl_xml,
    cors_xml,
    parse_acl,
    parse_complete_parts,
    parse_cors,
    parse_create_bucket,
    parse_delete_objects,
    parse_http_date,
    parse_tagging,
    parse_versioning,
    tagging_xml,
    versioning_xml,
)
from skymesh.node.api import parse_range as node_parse_range
from skymesh.wire.metainfo import CorsRule
from tests.planet import s3raw

FUZZ_EXAMPLES = int(os.environ.get("SKYMESH_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text an XML 1.0 document can hold (no other control characters, no surrogates, no
# U+FFFE/U+FFFF), and any text at all.
xml_chars = st.characters(
    codec="utf-8", min_codepoint=0x20, exclude_characters="\ufffe\uffff"
) | st.sampled_from("\t\n\r")
xml_text = st.text(xml_chars, max_size=40)
any_text = st.text(st.characters(codec="utf-8"), max_size=60)


# ---- XML bodies -----------------------------------------------------------------------

XML_PARSERS = (
    parse_delete_objects,
    parse_complete_parts,
    parse_create_bucket,
    parse_tagging,
    parse_acl,
    parse_cors,
    parse_versioning,
)
# every element name the parsers look for, so random documents reach deep branches
TAGS = [
    "Delete",
    "Object",
    "Key",
    "VersionId",
    "Quiet",
    "CompleteMultipartUpload",
    "Part",
    "PartNumber",
    "ETag",
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
    "CreateBucketConfiguration",
    "LocationConstraint",
    "Tagging",
    "TagSet",
    "Tag",
    "Value",
    "AccessControlPolicy",
    "AccessControlList",
    "Grant",
    "Grantee",
    "ID",
    "URI",
    "EmailAddress",
    "Permission",
    "Owner",
    "DisplayName",
    "CORSConfiguration",
    "CORSRule",
    "AllowedOrigin",
    "AllowedMethod",
    "AllowedHeader",
    "ExposeHeader",
    "MaxAgeSeconds",
    "VersioningConfiguration",
    "Status",
    "MfaDelete",
]
NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# text children, including numbers and the words the parsers compare with
leaf_text = (
    xml_text
    | st.integers(-(10**12), 10**12).map(str)
    | st.sampled_from(["true", "false", "Enabled", "Suspended", "READ", "FULL_CONTROL", ""])
)
element = st.recursive(
    st.builds(lambda t, text: f"<{t}>{_escape(text)}</{t}>", st.sampled_from(TAGS), leaf_text),
    lambda children: st.builds(
        lambda t, kids: f"<{t}>{''.join(kids)}</{t}>",
        st.sampled_from(TAGS),
        st.lists(children, max_size=6),
    ),
    max_leaves=30,
)
# an XML declaration, or none; its encoding may be one expat, Python or nobody knows
prolog = st.just("") | st.builds(
    lambda enc: f'<?xml version="1.0" encoding="{enc}"?>',
    st.sampled_from(["UTF-8", "utf-16", "ISO-8859-1", "cp1252", "shift_jis", "U-TF-8"])
    | st.text(string.ascii_letters + string.digits + "-_", max_size=10),
)
document = st.builds(
    lambda root, ns, kids, prolog: (
        prolog + f"<{root}{NS if ns else ''}>{''.join(kids)}</{root}>"
    ).encode(),
    st.sampled_from(TAGS),
    st.booleans(),
    st.lists(element, max_size=8),
    prolog,
)


def _parse_all(body: bytes) -> None:
    for parse in XML_PARSERS:
        try:
            parse(body)
        except S3Error as err:
            assert err.status in (400, 501), (parse.__name__, err.code)


@FUZZ
@given(st.binary(max_size=400))
def test_xml_parsers_take_any_bytes(body: bytes) -> None:
    _parse_all(body)


@FUZZ
@given(document)
def test_xml_parsers_take_any_document(body: bytes) -> None:
    _parse_all(body)


@FUZZ
@given(document, st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_xml_parsers_take_any_corruption(body: bytes, at: int, junk: bytes) -> None:
    at = min(at, len(body))
    _parse_all(body[:at] + junk + body[at:])
    _parse_all(body[:at])


@FUZZ
@given(st.lists(st.tuples(xml_text, xml_text), max_size=12))
def test_tagging_round_trips(tags: list[tuple[str, str]]) -> None:
    assert parse_tagging(tagging_xml(tags)) == tags


stripped = xml_text.map(str.strip)
cors_rule = st.builds(
    CorsRule,
    allowed_origins=st.lists(stripped, max_size=3),
    allowed_methods=st.lists(stripped, max_size=3),
    allowed_headers=st.lists(stripped, max_size=3),
    expose_headers=st.lists(stripped, max_size=3),
    max_age_seconds=st.none() | st.integers(0, 2**31),
    id=stripped,
)


@FUZZ
@given(st.lists(cors_rule, min_size=1, max_size=4))
def test_cors_round_trips(rules: list[CorsRule]) -> None:
    assert parse_cors(cors_xml(rules)) == rules


@FUZZ
@given(stripped, xml_text, st.booleans())
def test_acl_round_trips(owner_id: str, name: str, public: bool) -> None:
    grants = {
        (g.kind, g.grantee, g.permission) for g in parse_acl(acl_xml((owner_id, name), public))
    }
    expected = {("id", owner_id, "FULL_CONTROL")}
    if public:
        expected.add(("uri", "http://acs.amazonaws.com/groups/global/AllUsers", "READ"))
    assert grants == expected


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_versioning_round_trips(status: str) -> None:
    assert parse_versioning(versioning_xml(status)) == status


# ---- aws-chunked ----------------------------------------------------------------------

SECRET = "fuzz-secret"
TIMESTAMP = "20260101T000000Z"
SCOPE = "20260101/us-east-1/s3/aws4_request"
KEY = derive_signing_key(SECRET, "20260101", "us-east-1")
SEED = hashlib.sha256(b"seed").hexdigest()
SIGNED_MODES: tuple[PayloadMode, ...] = ("streaming-signed", "streaming-signed-trailer")


def _auth(mode: PayloadMode) -> AuthResult:
    return AuthResult(
        access_key="AK",
        secret=SECRET,
        payload_mode=mode,
        signing_key=KEY,
        seed_signature=SEED,
        timestamp=TIMESTAMP,
        scope=SCOPE,
    )


def _encode(mode: PayloadMode, chunks: list[bytes], trailers: dict[str, str]) -> bytes:
    if mode == "streaming-unsigned-trailer":
        return s3raw.unsigned_chunks(chunks, trailers)
    signed = s3raw.Signed({}, KEY, TIMESTAMP, SCOPE, SEED)
    return s3raw.signed_chunks(
        signed, chunks, trailers=trailers if mode == "streaming-signed-trailer" else None
    )


def _decode(
    mode: PayloadMode | None, pieces: list[bytes], trailer_names: set[str]
) -> tuple[bytes, dict[str, str]]:
    decoder = AwsChunkedDecoder(_auth(mode) if mode else None, trailer_names)
    out = bytearray()
    for piece in pieces:
        for data in decoder.feed(piece):
            out += data
    return bytes(out), decoder.finish()


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


modes = st.sampled_from(
    ["streaming-signed", "streaming-signed-trailer", "streaming-unsigned-trailer"]
)
chunk_lists = st.lists(st.binary(min_size=1, max_size=300), max_size=5)
cut_lists = st.lists(st.integers(0, 2000), max_size=8)


def _trailers(mode: str, chunks: list[bytes]) -> dict[str, str]:
    if mode == "streaming-signed":
        return {}
    return {"x-amz-checksum-sha256": hashlib.sha256(b"".join(chunks)).hexdigest()}


@FUZZ
@given(modes, chunk_lists, cut_lists)
def test_chunked_round_trips_in_any_split(
    mode: PayloadMode, chunks: list[bytes], cuts: list[int]
) -> None:
    trailers = _trailers(mode, chunks)
    body = _encode(mode, chunks, trailers)
    assert _decode(mode, _split(body, cuts), set(trailers)) == (b"".join(chunks), trailers)


@FUZZ
@given(st.sampled_from(SIGNED_MODES), chunk_lists, st.data())
def test_signed_chunked_body_altered_anywhere_never_decodes_to_other_data(
    mode: PayloadMode, chunks: list[bytes], data: st.DataObject
) -> None:
    trailers = _trailers(mode, chunks)
    body = _encode(mode, chunks, trailers)
    at = data.draw(st.integers(0, len(body)))
    how = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    junk = data.draw(st.binary(min_size=1, max_size=4))
    if how == "flip" and at < len(body):
        altered = body[:at] + bytes([body[at] ^ data.draw(st.integers(1, 255))]) + body[at + 1 :]
    elif how == "insert":
        altered = body[:at] + junk + body[at:]
    elif how == "delete":
        altered = body[:at] + body[at + len(junk) :]
    else:
        altered = body[:at]
    try:
        got = _decode(mode, _split(altered, data.draw(cut_lists)), set(trailers))
    except S3Error:
        return
    assert got == (b"".join(chunks), trailers)


@FUZZ
@given(st.binary(max_size=600), cut_lists, st.sampled_from([None, *SIGNED_MODES]))
def test_chunked_decoder_takes_any_bytes(
    junk: bytes, cuts: list[int], mode: PayloadMode | None
) -> None:
    with contextlib.suppress(S3Error):
        _decode(mode, _split(junk, cuts), {"x-amz-checksum-crc32"})


@FUZZ
@given(any_text)
def test_decoded_content_length_takes_any_text(value: str) -> None:
    try:
        n = decoded_content_length({"x-amz-decoded-content-length": value})
    except S3Error as err:
        assert err.code == "InvalidArgument"
    else:
        assert n is not None and n >= 0


# ---- SigV4 ----------------------------------------------------------------------------

ACCESS_KEY = "AKIDFUZZ"
HOST = "s3.example.com"


def lookup(access_key: str) -> str | None:
    return SECRET if access_key == ACCESS_KEY else None


def _signed(method: str, path: str, query: str) -> SigV4Request:
    """A request signed by botocore (so AWS's canonicalisation, not ours)."""
    request = AWSRequest(method=method, url=f"http://{HOST}{path}?{query}")
    signer = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1")
    signer.add_auth(request)
    return SigV4Request(
        method, path, query, [("Host", HOST), *request.headers.items()], datetime.now(UTC)
    )


def _encode_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


names = st.text(string.ascii_letters + "-_.~ é+/=&%", min_size=1, max_size=12).filter(
    lambda n: not n.lower().startswith("x-amz-")
)
values = st.text(st.characters(codec="utf-8"), max_size=20)
query_pairs = st.lists(st.tuples(names, values), max_size=6)


def _reencode(text: str, draw: st.DataObject) -> str:
    """``text`` percent-encoded some other valid way: unreserved characters escaped or
    not, hex in either case, a space as ``+`` or ``%20``."""
    out = []
    for ch in text:
        if ch in string.ascii_letters + string.digits + "-_.~":
            out.append(draw.draw(st.sampled_from([ch, f"%{ord(ch):02X}", f"%{ord(ch):02x}"])))
        elif ch == " ":
            out.append(draw.draw(st.sampled_from(["+", "%20"])))
        else:
            escaped = quote(ch, safe="")
            out.append(escaped.lower() if draw.draw(st.booleans()) else escaped)
    return "".join(out)


@FUZZ
@given(query_pairs)
def test_query_decodes_to_what_was_encoded(pairs: list[tuple[str, str]]) -> None:
    assert parse_query(_encode_query(pairs)) == pairs


@FUZZ
@given(query_pairs, st.data())
def test_equivalent_queries_verify_alike(pairs: list[tuple[str, str]], data: st.DataObject) -> None:
    req = _signed("GET", "/bucket", _encode_query(pairs))
    verify(req, lookup)
    other = "&".join(f"{_reencode(k, data)}={_reencode(v, data)}" for k, v in pairs)
    assert parse_query(other) == pairs
    verify(SigV4Request(req.method, req.path, other, req.headers, req.now), lookup)


@FUZZ
@given(query_pairs, st.data())
def test_different_queries_do_not_verify(pairs: list[tuple[str, str]], data: st.DataObject) -> None:
    req = _signed("GET", "/bucket", _encode_query(pairs))
    change = data.draw(st.sampled_from(["add", "drop", "value", "plus"] if pairs else ["add"]))
    changed = list(pairs)
    if change == "add":
        changed.insert(data.draw(st.integers(0, len(pairs))), data.draw(st.tuples(names, values)))
    elif change == "drop":
        changed.pop(data.draw(st.integers(0, len(pairs) - 1)))
    else:
        i = data.draw(st.integers(0, len(pairs) - 1))
        name, value = pairs[i]
        new = value + "+" if change == "plus" else data.draw(values.filter(lambda v: v != value))
        changed[i] = (name, new)
    query = _encode_query(changed)
    if change == "plus":
        # the attack of issue 13: a "+" sent raw where "%2B" was signed
        query = query.replace("%2B", "+")
        changed = parse_query(query)
    if sorted(changed) == sorted(pairs):
        return  # e.g. a pair added that was already there twice: not different
    with pytest.raises(S3Error) as info:
        verify(SigV4Request("GET", "/bucket", query, req.headers, req.now), lookup)
    assert info.value.code == "SignatureDoesNotMatch"


header_text = st.text(
    string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", ""),
    max_size=30,
)


def _signed_with_meta(value: str) -> list[tuple[str, str]]:
    """The headers of a PUT signed by botocore with ``x-amz-meta-a: value``."""
    request = AWSRequest(
        method="PUT",
        url=f"http://{HOST}/bucket/key",
        headers={"x-amz-meta-a": value, "x-amz-content-sha256": s3raw.EMPTY_SHA256},
    )
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1").add_auth(request)
    return [("Host", HOST), *request.headers.items()]


def _with_meta(headers: list[tuple[str, str]], value: str | None = None) -> SigV4Request:
    """The signed PUT, its ``x-amz-meta-a`` replaced by ``value`` when given."""
    if value is not None:
        headers = [(k, value if k.lower() == "x-amz-meta-a" else v) for k, v in headers]
    return SigV4Request("PUT", "/bucket/key", "", headers, datetime.now(UTC))


@FUZZ
@given(header_text, header_text, st.data())
def test_signed_header_values_bind(value: str, other: str, data: st.DataObject) -> None:
    """A signed header's value may be re-spaced (SigV4 folds whitespace), not changed."""
    headers = _signed_with_meta(value)
    verify(_with_meta(headers), lookup)
    words = value.split()
    edge = data.draw(st.sampled_from(["", " ", "\t", "  "]))
    respaced = edge + data.draw(st.sampled_from([" ", "  ", " \t "])).join(words) + edge
    verify(_with_meta(headers, respaced), lookup)
    if other.split() != words:
        with pytest.raises(S3Error) as info:
            verify(_with_meta(headers, other), lookup)
        assert info.value.code == "SignatureDoesNotMatch"


header_names = st.sampled_from(
    [
        "Authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "Date",
        "Host",
        "x-amz-meta-a",
        "Content-MD5",
        "X-Amz-Date",
    ]
) | st.text(string.ascii_letters + "-", min_size=1, max_size=10)
auth_fields = st.lists(
    st.sampled_from(["Credential", "SignedHeaders", "Signature", "Foo", ""]).flatmap(
        lambda name: st.builds(
            lambda v, eq: f"{name}{'=' if eq else ''}{v}",
            st.one_of(
                any_text,
                st.builds(
                    "/".join,
                    st.lists(
                        st.sampled_from(
                            [ACCESS_KEY, "20260101", "us-east-1", "s3", "aws4_request", ""]
                        )
                        | any_text,
                        max_size=6,
                    ),
                ),
                st.builds(
                    ";".join, st.lists(st.sampled_from(["host", "x-amz-date", ""]), max_size=4)
                ),
            ),
            st.booleans(),
        )
    ),
    max_size=5,
)
authorization = st.builds(
    lambda algorithm, fields, sep: f"{algorithm} {sep.join(fields)}",
    st.sampled_from(["AWS4-HMAC-SHA256", "AWS", "AWS4-ECDSA-P256-SHA256", ""]) | any_text,
    auth_fields,
    st.sampled_from([",", ", ", ",,"]),
)
header_values = (
    any_text
    | authorization
    | st.sampled_from(
        ["20260101T000000Z", "UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "0" * 64]
    )
)
presign_query = st.builds(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "X-Amz-Algorithm",
                    "X-Amz-Credential",
                    "X-Amz-Signature",
                    "X-Amz-Date",
                    "X-Amz-SignedHeaders",
                    "X-Amz-Expires",
                    "X-Amz-Content-Sha256",
                    "AWSAccessKeyId",
                    "Signature",
                ]
            )
            | names,
            st.sampled_from(["AWS4-HMAC-SHA256", "20260101T000000Z", "1", "host"])
            | any_text.map(lambda v: quote(v, safe="%+=&")),
        ),
        max_size=8,
    ),
)


@FUZZ
@given(
    st.sampled_from(["GET", "PUT", "POST", "HEAD", "DELETE"]) | any_text,
    any_text,
    presign_query | any_text,
    st.lists(st.tuples(header_names, header_values), max_size=8),
)
def test_sigv4_takes_any_request(
    method: str, path: str, query: str, headers: list[tuple[str, str]]
) -> None:
    req = SigV4Request(method, "/" + path, query, headers, datetime(2026, 1, 1, tzinfo=UTC))
    with contextlib.suppress(S3Error):
        verify(req, lookup)


# ---- Range ----------------------------------------------------------------------------

digits = st.one_of(
    st.just(""),
    st.integers(0, 2**70).map(str),
    st.text("0123456789", min_size=1, max_size=30),
    st.integers(4290, 4400).map(lambda n: "1" * n),  # past int()'s 4300-digit limit
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4),  # other scripts' digits
)
range_header = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", digits, digits),
    st.builds(
        lambda a, b, c: f"{a}={b}-{c}",
        st.sampled_from(["bytes", "BYTES", "items", ""]),
        digits,
        digits,
    ),
    st.builds(lambda a, b: f"bytes={a}-{b}, 0-1", digits, digits),
    any_text,
)
sizes = st.integers(0, 2**40)


@FUZZ
@given(range_header, sizes)
def test_gateway_range_is_a_slice_or_s3_error(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except S3Error as err:
        assert err.code == "InvalidRange"
        return
    if got is not None:
        start, end = got
        assert 0 <= start < end <= size


@FUZZ
@given(st.integers(0, 2**40), st.integers(0, 2**40), sizes)
def test_gateway_range_of_valid_bounds(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
    elif first >= size:
        with pytest.raises(S3Error):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == (first, min(last + 1, size))


@FUZZ
@given(range_header, sizes)
def test_node_range_is_a_slice_or_bad_request(header: str, size: int) -> None:
    try:
        got = node_parse_range(header, size)
    except BadRequest:
        return
    if got is not None:
        start, stop = got
        assert 0 <= start < stop <= size


# ---- routing, headers, OpenAI file ids ------------------------------------------------


@FUZZ
@given(
    st.sampled_from(["GET", "PUT", "POST", "HEAD", "DELETE", "OPTIONS", "PATCH"]),
    any_text,
    st.dictionaries(
        st.sampled_from(["uploadId", "partNumber", "versionId", "acl", "delete", "uploads"])
        | names,
        st.lists(values, min_size=1, max_size=2),
        max_size=4,
    ),
    st.sampled_from(["localhost", "b.s3.example.com", "127.0.0.1:9000", "[::1]"]) | any_text,
    st.lists(st.tuples(st.sampled_from(["x-amz-copy-source", "Host"]), any_text), max_size=2),
)
def test_router_takes_any_request(
    method: str,
    path: str,
    query: dict[str, list[str]],
    host: str,
    headers: list[tuple[str, str]],
) -> None:
    with contextlib.suppress(S3Error):
        route(
            method,
            "/" + quote(path, safe="/%"),
            query,
            host,
            ["s3.example.com"],
            CIMultiDict(headers),
        )


@FUZZ
@given(
    any_text | st.builds("&".join, st.lists(st.builds("=".join, st.lists(any_text, max_size=3))))
)
def test_tagging_header_takes_any_text(value: str) -> None:
    with contextlib.suppress(S3Error):
        tags_from_header(value)


@FUZZ
@given(any_text)
def test_http_dates_take_any_text(value: str) -> None:
    parse_http_date(value)


@FUZZ
@given(any_text)
def test_file_ids_take_any_text(value: str) -> None:
    try:
        bucket, key = parse_file_id(value)
    except OpenAIError as err:
        assert err.status == 404
    else:
        assert bucket and key


@FUZZ
@given(
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1), values.filter(bool)
)
def test_file_ids_round_trip(bucket: str, key: str) -> None:
    assert parse_file_id(file_id(bucket, key)) == (bucket, key)


@FUZZ
@given(st.none() | any_text)
def test_upload_filenames_are_safe(name: str | None) -> None:
    safe = _filename(name)
    assert 0 < len(safe) <= 200
    assert set(safe) <= set(string.ascii_letters + string.digits + "._ -")
    assert not safe.startswith((".", " "))
