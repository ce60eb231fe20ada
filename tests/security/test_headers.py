"""Range and SigV4 headers a caller controls: the answer S3 gives, never a 500, never acting.

- **Range** on GetObject (through boto3, and raw where boto3 would not send it) over
  an object of several segments: one range, suffixes, inverted, several ranges, bounds
  of any length, digits of other scripts, other units, unsatisfiable. A range S3
  ignores sends the whole object; one that misses it is ``416 InvalidRange``. The same
  headers on a node's piece GET, where anything but one ``bytes=`` range is a 400.
- **SigV4**, on requests that would change something (a DELETE of an object that must
  survive, a PUT of a key that must not appear): Authorization headers with parts
  missing or repeated, or two of them; other algorithms; credential scopes with the
  wrong service, terminal or date, or a region rewritten; ``x-amz-date`` skewed or
  malformed (other scripts' digits included); signed-header lists without ``host``
  or rewritten; unsigned or duplicated ``x-amz-*`` headers; and presigned URLs with
  ``X-Amz-Expires`` over seven days, negative or zero, expired or not yet valid.
  Requests are signed by botocore's own signer, with the clock or the scope it is
  given.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp
import botocore.auth
import pytest
import urllib3
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet import s3raw
from tests.security.test_orders import GET, PUT, Peer, node_config, pid

SEGMENT = 256 * 1024
BUCKET = "headers"
BIG = random_bytes(3 * SEGMENT + 1000, 7)  # four segments
TEN = b"0123456789"


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("headers")
    config = PlanetConfig(node_count=6, coordinator_overrides={"max_segment_size": SEGMENT})
    thread = PlanetThread(Planet(root, config)).start()
    try:
        s3 = thread.boto3()
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="big", Body=BIG)
        s3.put_object(Bucket=BUCKET, Key="ten", Body=TEN)
        s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")
        s3.put_object(Bucket=BUCKET, Key="victim", Body=b"must survive")
        yield thread
    finally:
        thread.stop()


# ================================================================ Range on GetObject


def _ranges(size: int) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(Range header, status, [start, end) of the bytes answered or None for all of them)."""
    across = [(f"bytes={SEGMENT - 5}-{SEGMENT + 4}", 206, (SEGMENT - 5, SEGMENT + 5))]
    return [
        ("bytes=0-9", 206, (0, 10)),
        *(across if size > SEGMENT else []),  # the end of one segment and the start of the next
        ("bytes=-5", 206, (size - 5, size)),
        (f"bytes=-{size + 100}", 206, (0, size)),  # a suffix longer than the object: all of it
        (f"bytes={size - 3}-", 206, (size - 3, size)),
        (f"bytes=5-{size * 10}", 206, (5, size)),  # an end past the end: to the end
        ("bytes=0-" + "9" * 40, 206, (0, size)),
        ("bytes=" + "0" * 30 + "7-8", 206, (7, 9)),  # leading zeros are still numbers
        # ignored by S3, which then sends the whole object
        (f"bytes={size - 1}-2", 200, None),  # inverted (its start is a segment far in)
        ("bytes=9-5", 200, None),
        ("bytes=0-1,4-5", 200, None),  # several ranges
        ("bytes=0-1, 3-", 200, None),
        ("items=0-5", 200, None),  # another unit
        ("bytes=", 200, None),
        ("bytes=-", 200, None),
        ("bytes=a-b", 200, None),
        ("bytes=1.5-3", 200, None),
        ("bytes=\u0661-\u0663".encode().decode("latin-1"), 200, None),  # Arabic-Indic digits
        ("bytes=\uff10-\uff15".encode().decode("latin-1"), 200, None),  # fullwidth digits
        # a valid range that misses the object
        (f"bytes={size}-", 416, None),
        (f"bytes={size}-{size + 10}", 416, None),
        ("bytes=" + "9" * 5000 + "-", 416, None),
        ("bytes=-0", 416, None),
    ]


def _expected(status: int, span: tuple[int, int] | None, data: bytes) -> bytes:
    if status == 416:
        return b""
    return data if span is None else data[span[0] : span[1]]


@pytest.mark.parametrize("key", ["big", "ten"])
def test_range_headers_on_get_object_raw(planet: PlanetThread, key: str) -> None:
    data = BIG if key == "big" else TEN
    for header, status, span in _ranges(len(data)):
        # Range left out of the signature, as a proxy (or an SDK) may send it
        signed = s3raw.sign(planet, "GET", f"/{BUCKET}/{key}", s3raw.EMPTY_SHA256)
        reply = s3raw.send(planet, "GET", f"/{BUCKET}/{key}", {**signed.headers, "Range": header})
        assert reply.status == status, (key, header[:40], reply.body[:300])
        if status == 416:
            assert reply.code == "InvalidRange", header
            continue
        assert reply.body == _expected(status, span, data), (key, header[:40])
        if status == 206:
            assert span is not None
            content_range = f"bytes {span[0]}-{span[1] - 1}/{len(data)}"
            assert reply.headers["Content-Range"] == content_range, header


def test_range_headers_on_get_object_through_boto3(planet: PlanetThread) -> None:
    s3 = planet.boto3()
    for header, status, span in _ranges(len(BIG)):
        if not header.isascii() or len(header) > 200:
            continue  # botocore sends (and signs) what an SDK user may write
        try:
            got = s3.get_object(Bucket=BUCKET, Key="big", Range=header)
        except ClientError as e:
            assert status == 416 and e.response["Error"]["Code"] == "InvalidRange", header
            continue
        assert got["ResponseMetadata"]["HTTPStatusCode"] == status, header
        assert got["Body"].read() == _expected(status, span, BIG), header


def test_range_on_an_empty_object_and_with_a_part_number(planet: PlanetThread) -> None:
    s3 = planet.boto3()
    for header in ("bytes=0-", "bytes=0-0", "bytes=-1"):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=BUCKET, Key="empty", Range=header)
        assert e.value.response["Error"]["Code"] == "InvalidRange", header
    assert s3.get_object(Bucket=BUCKET, Key="empty", Range="bytes=5-1")["Body"].read() == b""
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="big", Range="bytes=0-1", PartNumber=1)
    assert e.value.response["Error"]["Code"] == "InvalidRequest"


# ================================================================ Range on a node's piece GET


@pytest.fixture
async def node(tmp_path: Any) -> AsyncIterator[Peer]:
    async with aiohttp.ClientSession() as session:
        peer = Peer(node_config(tmp_path / "node"), session)
        await peer.service.start()
        try:
            yield peer
        finally:
            await peer.service.stop()


async def test_range_headers_on_a_node(node: Peer) -> None:
    piece = pid()
    data = os.urandom(1000)
    reply = await node.call("PUT", f"/v1/pieces/{piece}", node.order(piece, PUT), data)
    assert reply.status == 201
    get = node.order(piece, GET, max_bytes=1 << 30)
    cases: list[tuple[str, int, bytes | None]] = [
        ("bytes=0-9", 206, data[:10]),
        ("bytes=-5", 206, data[-5:]),
        ("bytes=-5000", 206, data),
        ("bytes=990-", 206, data[990:]),
        ("bytes=5-99999", 206, data[5:]),
        ("bytes=" + "9" * 19 + "-", 416, None),  # 19 digits: a number, past the end
        ("bytes=1000-", 416, None),
        ("bytes=9-5", 416, None),
        ("bytes=-0", 416, None),
        ("bytes=" + "9" * 20 + "-", 400, None),  # more digits than any size has
        ("bytes=0-" + "9" * 5000, 400, None),
        ("bytes=0-1,4-5", 400, None),
        ("bytes=\u0661-\u0663".encode().decode("latin-1"), 400, None),
        ("items=0-5", 400, None),
        ("bytes=", 400, None),
        ("bytes=-", 400, None),
        ("bytes=+1-2", 400, None),
        ("bytes=0x1-2", 400, None),
    ]
    for header, status, body in cases:
        reply = await node.call("GET", f"/v1/pieces/{piece}", get, headers={"Range": header})
        assert reply.status == status, (header[:40], reply.body[:200])
        if body is not None:
            assert reply.body == body, header[:40]
        elif status == 416:
            assert reply.message.startswith("range"), reply.message
    # the refused ranges charged nothing: only the bytes sent count
    served = sum(len(b) for _, s, b in cases if b is not None)
    assert [row[2] for row in node.state()[1] if row[1] == "get"] == [served]


# ================================================================ SigV4


def _credentials(planet: PlanetThread) -> Credentials:
    cred = planet.planet.credential
    assert cred is not None
    return Credentials(cred.access_key_id, cred.secret_access_key)


class _At:
    """A stand-in for botocore's clock that formats as ``timestamp``, whatever it is."""

    def __init__(self, timestamp: str):
        self.timestamp = timestamp

    def strftime(self, _fmt: str) -> str:
        return self.timestamp


@contextlib.contextmanager
def _clock(when: datetime.datetime | str | None) -> Iterator[None]:
    """botocore's clock at ``when`` (a time, or an ``x-amz-date`` as it is to be sent)."""
    if when is None:
        yield
        return
    original = botocore.auth.get_current_datetime
    value: Any = _At(when) if isinstance(when, str) else when.replace(tzinfo=None)
    botocore.auth.get_current_datetime = lambda *a, **k: value
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = original


def sign(
    planet: PlanetThread,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    region: str = "us-east-1",
    when: datetime.datetime | str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers for a request signed by botocore (for ``region``, at ``when``)."""
    request = AWSRequest(method=method, url=planet.planet.endpoint + path, headers=headers or {})
    signer = S3SigV4Auth(_credentials(planet), "s3", region)
    digest = hashlib.sha256(body).hexdigest()
    signer.payload = lambda _request: digest
    with _clock(when):
        signer.add_auth(request)
    return dict(request.headers.items())


def presign(
    planet: PlanetThread,
    method: str,
    path: str,
    expires: int,
    when: datetime.datetime | None = None,
) -> str:
    """``path?query`` of a URL presigned by botocore."""
    request = AWSRequest(method=method, url=planet.planet.endpoint + path)
    with _clock(when):
        S3SigV4QueryAuth(_credentials(planet), "s3", "us-east-1", expires=expires).add_auth(request)
    url = urlsplit(request.url)
    return f"{url.path}?{url.query}"


VICTIM = f"/{BUCKET}/victim"
NEW_KEY = f"/{BUCKET}/must-not-appear"


def _untouched(s3: S3Client) -> None:
    assert s3.get_object(Bucket=BUCKET, Key="victim")["Body"].read() == b"must survive"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="must-not-appear")


def _send(
    planet: PlanetThread,
    method: str,
    path: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes = b"",
) -> s3raw.Reply:
    """``headers`` as given: a list may name a header twice."""
    sent = urllib3.HTTPHeaderDict()
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        sent.add(name, value)
    return s3raw.send(planet, method, path, sent, body)


def _auth_parts(headers: dict[str, str]) -> dict[str, str]:
    value = headers["Authorization"]
    _, _, rest = value.partition(" ")
    return dict(item.strip().split("=", 1) for item in rest.split(","))


def _with_auth(headers: dict[str, str], value: str) -> dict[str, str]:
    return {**headers, "Authorization": value}


def _authorization_cases(headers: dict[str, str]) -> list[tuple[str, str, int, str]]:
    """(name, Authorization value, status, code), built from a valid signed header."""
    p = _auth_parts(headers)
    cred, signed, sig = p["Credential"], p["SignedHeaders"], p["Signature"]
    alg = "AWS4-HMAC-SHA256"
    access, date, region, service, term = cred.split("/")
    malformed = "AuthorizationHeaderMalformed"
    return [
        ("no Credential", f"{alg} SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("no SignedHeaders", f"{alg} Credential={cred}, Signature={sig}", 400, malformed),
        ("no Signature", f"{alg} Credential={cred}, SignedHeaders={signed}", 400, malformed),
        ("empty Signature", f"{alg} Credential={cred}, SignedHeaders={signed}, Signature=",
         400, malformed),
        ("Credential twice", f"{alg} Credential={cred}, Credential={cred}, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("Signature twice", f"{alg} Credential={cred}, SignedHeaders={signed}, "
         f"Signature={sig}, Signature={sig}", 400, malformed),
        ("no commas", f"{alg} Credential={cred} SignedHeaders={signed} Signature={sig}",
         400, malformed),
        ("only the algorithm", alg, 400, malformed),
        ("empty", "", 400, malformed),
        ("another algorithm", f"AWS4-HMAC-SHA512 Credential={cred}, SignedHeaders={signed}, "
         f"Signature={sig}", 400, malformed),
        ("algorithm in lower case", f"{alg.lower()} Credential={cred}, SignedHeaders={signed}, "
         f"Signature={sig}", 400, malformed),
        ("SigV4A", f"AWS4-ECDSA-P256-SHA256 Credential={cred}, SignedHeaders={signed}, "
         f"Signature={sig}", 501, "NotImplemented"),
        ("SigV2, wrong signature", f"AWS {access}:c2lnbmF0dXJl", 403, "SignatureDoesNotMatch"),
        ("SigV2, unknown key", "AWS AKIDNOTREAL:c2lnbmF0dXJl", 403, "InvalidAccessKeyId"),
        ("SigV2 without a signature", f"AWS {access}", 400, malformed),
        ("credential of four parts", f"{alg} Credential={access}/{date}/{region}/{service}, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("wrong service", f"{alg} Credential={access}/{date}/{region}/s4/{term}, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("wrong terminal", f"{alg} Credential={access}/{date}/{region}/{service}/aws5_request, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("empty region", f"{alg} Credential={access}/{date}//{service}/{term}, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("date not x-amz-date's", f"{alg} Credential={access}/20200101/{region}/{service}/{term}"
         f", SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("date malformed", f"{alg} Credential={access}/2020-1-1/{region}/{service}/{term}, "
         f"SignedHeaders={signed}, Signature={sig}", 400, malformed),
        ("region rewritten", f"{alg} Credential={access}/{date}/eu-west-1/{service}/{term}, "
         f"SignedHeaders={signed}, Signature={sig}", 403, "SignatureDoesNotMatch"),
        ("unknown access key", f"{alg} Credential=AKIDNOTREAL/{date}/{region}/{service}/{term}"
         f", SignedHeaders={signed}, Signature={sig}", 403, "InvalidAccessKeyId"),
        ("access key in another case", f"{alg} Credential={access.swapcase()}/{date}/{region}/"
         f"{service}/{term}, SignedHeaders={signed}, Signature={sig}", 403, "InvalidAccessKeyId"),
        ("host not signed", f"{alg} Credential={cred}, SignedHeaders="
         f"{';'.join(h for h in signed.split(';') if h != 'host')}, Signature={sig}",
         400, malformed),
        ("an empty signed header", f"{alg} Credential={cred}, SignedHeaders=host;;x-amz-date, "
         f"Signature={sig}", 400, malformed),
        ("signed headers reordered", f"{alg} Credential={cred}, SignedHeaders="
         f"{';'.join(reversed(signed.split(';')))}, Signature={sig}", 403, "SignatureDoesNotMatch"),
        ("signed headers in upper case", f"{alg} Credential={cred}, SignedHeaders="
         f"{signed.upper()}, Signature={sig}", 403, "SignatureDoesNotMatch"),
        ("a header dropped from the list", f"{alg} Credential={cred}, SignedHeaders="
         f"{signed.replace(';x-amz-content-sha256', '')}, Signature={sig}", 403, "AccessDenied"),
        ("another signature", f"{alg} Credential={cred}, SignedHeaders={signed}, "
         f"Signature={'0' * 64}", 403, "SignatureDoesNotMatch"),
        ("a signature of non-ASCII", f"{alg} Credential={cred}, SignedHeaders={signed}, "
         f"Signature={'é' * 64}", 403, "SignatureDoesNotMatch"),
    ]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), [("DELETE", VICTIM), ("PUT", NEW_KEY)])
def test_broken_authorization_headers_are_refused_and_act_on_nothing(
    planet: PlanetThread, method: str, path: str
) -> None:
    s3 = planet.boto3()
    body = b"new data" if method == "PUT" else b""
    headers = sign(planet, method, path, body)
    for name, value, status, code in _authorization_cases(headers):
        # sent as UTF-8 bytes, as a client would put them on the wire
        sent = _with_auth(headers, value.encode().decode("latin-1"))
        reply = _send(planet, method, path, sent, body)
        assert (reply.status, reply.code) == (status, code), (name, reply.body[:300])
        _untouched(s3)
    # two Authorization headers, each valid alone
    reply = _send(
        planet, method, path, [*headers.items(), ("Authorization", headers["Authorization"])], body
    )
    assert (reply.status, reply.code) == (400, "AuthorizationHeaderMalformed"), reply.body[:300]
    _untouched(s3)


def test_a_scope_of_another_region_verifies_with_that_region(planet: PlanetThread) -> None:
    """The gateway takes a SigV4 scope of any region (docs/operations.md ``s3_region``):
    the region is in the signing key, so a scope rewritten to another region fails, and
    one really signed for it passes."""
    path = f"/{BUCKET}/ten"
    reply = _send(planet, "GET", path, sign(planet, "GET", path, region="eu-west-1"))
    assert (reply.status, reply.body) == (200, TEN)
    headers = sign(planet, "GET", path, region="eu-west-1")
    headers["Authorization"] = headers["Authorization"].replace("/eu-west-1/", "/us-east-1/")
    reply = _send(planet, "GET", path, headers)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(
    ("name", "when", "status", "code"),
    [
        ("16 minutes behind", lambda: _now() - datetime.timedelta(minutes=16), 403,
         "RequestTimeTooSkewed"),
        ("16 minutes ahead", lambda: _now() + datetime.timedelta(minutes=16), 403,
         "RequestTimeTooSkewed"),
        ("a year behind", lambda: _now() - datetime.timedelta(days=365), 403,
         "RequestTimeTooSkewed"),
        ("only a date", lambda: _now().strftime("%Y%m%d"), 403, "AccessDenied"),
        # (the scope's date is the first eight characters, so malformed too)
        ("ISO 8601 extended", lambda: _now().strftime("%Y-%m-%dT%H:%M:%SZ"), 400,
         "AuthorizationHeaderMalformed"),
        ("no Z", lambda: _now().strftime("%Y%m%dT%H%M%S"), 403, "AccessDenied"),
        ("month 13", lambda: _now().strftime("%Y13%dT%H%M%SZ"), 403, "AccessDenied"),
        ("30 February", lambda: _now().strftime("%Y0230T%H%M%SZ"), 403, "AccessDenied"),
        ("hour 25", lambda: _now().strftime("%Y%m%dT25%M%SZ"), 403, "AccessDenied"),
        # today, in Arabic-Indic digits: a date to int(), not to S3
        ("other scripts' digits", lambda: _now().strftime("%Y%m%dT%H%M%SZ").translate(
            str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667"
                                        "\u0668\u0669")), 400,
         "AuthorizationHeaderMalformed"),
        ("empty", lambda: "", 400, "AuthorizationHeaderMalformed"),
    ],
)  # fmt: skip
def test_skewed_and_malformed_dates_are_refused_and_act_on_nothing(
    planet: PlanetThread, name: str, when: Any, status: int, code: str
) -> None:
    s3 = planet.boto3()
    for method, path in (("DELETE", VICTIM), ("PUT", NEW_KEY)):
        body = b"new data" if method == "PUT" else b""
        headers = sign(planet, method, path, body, when=when())
        sent = {k: v.encode().decode("latin-1") for k, v in headers.items()}
        reply = _send(planet, method, path, sent, body)
        assert (reply.status, reply.code) == (status, code), (name, reply.body[:300])
        _untouched(s3)


def test_a_request_without_any_date_is_refused(planet: PlanetThread) -> None:
    headers = sign(planet, "DELETE", VICTIM)
    del headers["X-Amz-Date"]
    reply = _send(planet, "DELETE", VICTIM, headers)
    assert (reply.status, reply.code) == (403, "AccessDenied"), reply.body[:300]
    _untouched(planet.boto3())


def test_unsigned_and_duplicated_headers_act_on_nothing(planet: PlanetThread) -> None:
    s3 = planet.boto3()
    body = b"new data"
    signed = sign(planet, "PUT", NEW_KEY, body, headers={"x-amz-acl": "private"})
    cases: list[tuple[str, list[tuple[str, str]], int, str]] = [
        # an x-amz-* header the signature does not cover
        ("unsigned x-amz-acl", [*signed.items(), ("x-amz-meta-evil", "1")], 403, "AccessDenied"),
        # a second value of a signed header: the canonical request has both
        ("x-amz-acl twice", [*signed.items(), ("x-amz-acl", "public-read")], 403,
         "SignatureDoesNotMatch"),
        ("x-amz-date twice", [*signed.items(), ("X-Amz-Date", signed["X-Amz-Date"])], 403,
         "SignatureDoesNotMatch"),
        ("x-amz-content-sha256 twice",
         [*signed.items(), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")], 403,
         "SignatureDoesNotMatch"),
        # the signed value replaced, in another case
        ("X-AMZ-ACL rewritten", [*((k, v) for k, v in signed.items() if k.lower() != "x-amz-acl"),
                                 ("X-AMZ-ACL", "public-read")], 403, "SignatureDoesNotMatch"),
    ]  # fmt: skip
    for name, headers, status, code in cases:
        reply = _send(planet, "PUT", NEW_KEY, headers, body)
        assert (reply.status, reply.code) == (status, code), (name, reply.body[:300])
        _untouched(s3)
    # header names in any case are the same headers: a request signed so still works
    upper = {k.upper(): v for k, v in sign(planet, "GET", f"/{BUCKET}/ten").items()}
    reply = _send(planet, "GET", f"/{BUCKET}/ten", upper)
    assert (reply.status, reply.body) == (200, TEN)


def test_a_duplicated_host_header_acts_on_nothing(planet: PlanetThread) -> None:
    """Two Host headers (the signed one and another): HTTP says 400, SigV4 sees both."""
    headers = sign(planet, "DELETE", VICTIM)
    host = urlsplit(planet.planet.endpoint).netloc
    for extra in (host, "evil.example"):
        reply = _send(planet, "DELETE", VICTIM, [*headers.items(), ("Host", host), ("Host", extra)])
        assert 400 <= reply.status < 500, reply.body[:300]
        _untouched(planet.boto3())


# ---------------------------------------------------------------- presigned URLs


def _with_query(path_query: str, **changes: str) -> str:
    path, _, query = path_query.partition("?")
    pairs = [(k, changes.pop(k, v)) for k, v in parse_qsl(query, keep_blank_values=True)]
    pairs += list(changes.items())
    return path + "?" + urlencode(pairs, quote_via=quote)


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("expires over 7 days", lambda p: presign(p, "DELETE", VICTIM, 604801), 403,
         "AccessDenied"),
        ("expires of a year", lambda p: presign(p, "DELETE", VICTIM, 365 * 86400), 403,
         "AccessDenied"),
        ("expires negative", lambda p: presign(p, "DELETE", VICTIM, -1), 403,
         "AccessDenied"),
        ("expires zero", lambda p: presign(p, "DELETE", VICTIM, 0), 403,
         "AccessDenied"),
        ("expires rewritten to 7 days", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-Expires": "604800"}), 403,
         "SignatureDoesNotMatch"),
        ("expires not a number", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-Expires": "1e3"}), 400,
         "AuthorizationQueryParametersError"),
        ("expires in other digits", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-Expires": "\u0666\u0660"}), 400,
         "AuthorizationQueryParametersError"),
        ("expired", lambda p: presign(p, "DELETE", VICTIM, 60,
                                      _now() - datetime.timedelta(hours=2)), 403, "AccessDenied"),
        ("not valid yet", lambda p: presign(p, "DELETE", VICTIM, 60,
                                            _now() + datetime.timedelta(hours=2)), 403,
         "AccessDenied"),
        ("another algorithm", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-Algorithm": "AWS4-HMAC-SHA512"}), 400,
         "AuthorizationQueryParametersError"),
        ("no signed headers", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-SignedHeaders": ""}), 400,
         "AuthorizationQueryParametersError"),
        ("host not signed", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-SignedHeaders": "x-amz-date"}), 400,
         "AuthorizationQueryParametersError"),
        ("a date malformed", lambda p: _with_query(
            presign(p, "DELETE", VICTIM, 60), **{"X-Amz-Date": "2026-01-01T00:00:00Z"}), 400,
         "AuthorizationQueryParametersError"),
        ("a credential of another service", lambda p: (lambda q: _with_query(
            q, **{"X-Amz-Credential": dict(parse_qsl(q.partition("?")[2]))[
                "X-Amz-Credential"].replace("/s3/", "/s4/")}))(
            presign(p, "DELETE", VICTIM, 60)), 400, "AuthorizationQueryParametersError"),
        ("the signature twice", lambda p: presign(p, "DELETE", VICTIM, 60) + "&X-Amz-Signature="
         + "0" * 64, 400, "AuthorizationQueryParametersError"),
        ("for GET, used to DELETE", lambda p: presign(p, "GET", VICTIM, 60), 403,
         "SignatureDoesNotMatch"),
    ],
)  # fmt: skip
def test_bad_presigned_urls_are_refused_and_act_on_nothing(
    planet: PlanetThread, name: str, make: Any, status: int, code: str
) -> None:
    url = make(planet)
    reply = s3raw.send(planet, "DELETE", url, {})
    assert (reply.status, reply.code) == (status, code), (name, reply.body[:300])
    _untouched(planet.boto3())


def test_presigned_url_and_authorization_header_together_are_refused(
    planet: PlanetThread,
) -> None:
    url = presign(planet, "DELETE", VICTIM, 60)
    reply = s3raw.send(planet, "DELETE", url, sign(planet, "DELETE", VICTIM))
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply.body[:300]
    _untouched(planet.boto3())
    # and a good presigned URL still works (here on a key of its own)
    planet.boto3().put_object(Bucket=BUCKET, Key="doomed", Body=b"x")
    reply = s3raw.send(planet, "DELETE", presign(planet, "DELETE", f"/{BUCKET}/doomed", 60), {})
    assert reply.status == 204, reply.body[:300]
