"""SigV2 verification against botocore's own SigV2 signers (HmacV1Auth, HmacV1QueryAuth)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import cast
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.sigv2 import authenticate, canonical_resource, is_sigv2, verify_v2
from skymesh.gateway.s3.sigv4 import SigV4Request

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(AK, SK)


def lookup(access_key: str) -> str | None:
    return {AK: SK}.get(access_key)


def header_signed(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    auth_path: str | None = None,
) -> SigV4Request:
    """A request as botocore's HmacV1Auth signs it, as the gateway sees it."""
    req = AWSRequest(method=method, url=url, headers=headers or {})
    if auth_path is not None:
        req.auth_path = auth_path
    HmacV1Auth(CREDS).add_auth(req)
    split = urlsplit(req.url)
    return SigV4Request(
        method=method, path=split.path, query=split.query, headers=list(req.headers.items())
    )


def hdrs(req: SigV4Request) -> list[tuple[str, str]]:
    """The header pairs of a request built here (always a list of pairs)."""
    return cast(list[tuple[str, str]], req.headers)


def presigned(method: str, url: str, expires: int = 300) -> SigV4Request:
    req = AWSRequest(method=method, url=url, headers={})
    HmacV1QueryAuth(CREDS, expires=expires).add_auth(req)
    split = urlsplit(req.url)
    return SigV4Request(method=method, path=split.path, query=split.query)


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "http://gw/bucket/key", {}),
        ("GET", "http://gw/", {}),
        ("PUT", "http://gw/bucket/dir/a%20b%2Bc.txt", {"Content-Type": "text/plain"}),
        (
            "PUT",
            "http://gw/bucket/k",
            {
                "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                "x-amz-acl": "private",
                "x-amz-meta-a": " v ",
            },
        ),
        ("GET", "http://gw/bucket?acl", {}),
        ("GET", "http://gw/bucket?list-type=2&prefix=a", {}),
        ("GET", "http://gw/bucket/k?versionId=abc&response-content-type=text%2Fhtml", {}),
        ("POST", "http://gw/bucket/k?uploadId=xyz", {}),
        ("GET", "http://gw/bucket/k?uploads", {}),
        ("DELETE", "http://gw/bucket/%C3%BCn%C3%AFc%C3%B8d%C3%A9", {}),
    ],
)
def test_botocore_header_signatures_verify(method: str, url: str, headers: dict[str, str]) -> None:
    req = header_signed(method, url, headers)
    assert is_sigv2(req)
    auth = verify_v2(req, lookup)
    assert auth.access_key == AK and not auth.presigned
    assert auth.payload_mode == "unsigned"
    assert "content-md5" in auth.signed_headers
    assert all(h in auth.signed_headers for h in headers if h.startswith("x-amz-"))


def test_x_amz_date_replaces_date() -> None:
    """With x-amz-date the Date line is empty and x-amz-date is signed as an amz header."""
    stamp = formatdate(usegmt=True)
    sign = HmacV1Auth(CREDS).sign_string
    good = sign(f"GET\n\n\n\nx-amz-date:{stamp}\n/b/k")
    headers = [("x-amz-date", stamp), ("Authorization", f"AWS {AK}:{good}")]
    assert verify_v2(SigV4Request("GET", "/b/k", "", headers), lookup).access_key == AK
    # the date on the Date line instead is another string to sign
    bad = sign(f"GET\n\n\n{stamp}\nx-amz-date:{stamp}\n/b/k")
    headers = [("x-amz-date", stamp), ("Date", stamp), ("Authorization", f"AWS {AK}:{bad}")]
    with pytest.raises(S3Error) as e:
        verify_v2(SigV4Request("GET", "/b/k", "", headers), lookup)
    assert e.value.code == "SignatureDoesNotMatch"


def test_virtual_hosted_requests_sign_the_bucket_in_the_resource() -> None:
    req = header_signed("GET", "http://bucket.gw/key", auth_path="/bucket/key")
    assert verify_v2(req, lookup, host_bucket="bucket").access_key == AK
    with pytest.raises(S3Error) as e:
        verify_v2(req, lookup)
    assert e.value.code == "SignatureDoesNotMatch"


def test_canonical_resource_keeps_only_sub_resources_sorted() -> None:
    assert canonical_resource("/b", "prefix=x&acl&max-keys=3") == "/b?acl"
    assert (
        canonical_resource("/b/k", "versionId=v%2F1&response-expires=x&uploadId=")
        == "/b/k?response-expires=x&uploadId=&versionId=v/1"
    )


@pytest.mark.parametrize(
    "url", ["http://gw/bucket/key", "http://gw/bucket/a%20b", "http://gw/bucket/k?versionId=3"]
)
def test_botocore_presigned_urls_verify(url: str) -> None:
    req = presigned("GET", url)
    assert is_sigv2(req)
    auth = verify_v2(req, lookup)
    assert auth.access_key == AK and auth.presigned


def test_tampered_requests_are_signature_does_not_match() -> None:
    good = header_signed("PUT", "http://gw/bucket/k", {"x-amz-acl": "private"})
    cases = [
        SigV4Request("PUT", "/bucket/other", good.query, good.headers),
        SigV4Request("DELETE", good.path, good.query, good.headers),
        SigV4Request("PUT", good.path, "acl", good.headers),
        SigV4Request(
            "PUT",
            good.path,
            good.query,
            [(n, "public-read" if n == "x-amz-acl" else v) for n, v in hdrs(good)],
        ),
        SigV4Request("PUT", good.path, good.query, [*hdrs(good), ("x-amz-meta-new", "1")]),
    ]
    for req in cases:
        with pytest.raises(S3Error) as e:
            verify_v2(req, lookup)
        assert (e.value.code, e.value.status) == ("SignatureDoesNotMatch", 403), req
    url = presigned("GET", "http://gw/bucket/key")
    later = url.query.replace("Expires=", "Expires=1")  # a later expiry, same signature
    with pytest.raises(S3Error) as e:
        verify_v2(SigV4Request("GET", url.path, later), lookup)
    assert e.value.code in ("SignatureDoesNotMatch", "AccessDenied")
    with pytest.raises(S3Error) as e:
        verify_v2(SigV4Request("GET", "/bucket/other", url.query), lookup)
    assert e.value.code == "SignatureDoesNotMatch"


def test_unknown_key_and_wrong_secret() -> None:
    req = header_signed("GET", "http://gw/bucket/key")
    with pytest.raises(S3Error) as e:
        verify_v2(req, lambda _: None)
    assert (e.value.code, e.value.status) == ("InvalidAccessKeyId", 403)
    with pytest.raises(S3Error) as e:
        verify_v2(req, lambda _: "not-the-secret")
    assert (e.value.code, e.value.status) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(S3Error) as e:
        verify_v2(presigned("GET", "http://gw/b/k"), lambda _: None)
    assert e.value.code == "InvalidAccessKeyId"


def test_expired_presigned_url_is_refused_and_a_far_one_too() -> None:
    req = presigned("GET", "http://gw/bucket/key", expires=60)
    later = datetime.now(UTC) + timedelta(seconds=120)
    with pytest.raises(S3Error) as e:
        verify_v2(req, lookup, now=later)
    assert (e.value.code, e.value.status, e.value.message) == (
        "AccessDenied",
        403,
        "Request has expired",
    )
    far = presigned("GET", "http://gw/bucket/key", expires=30 * 86400)
    with pytest.raises(S3Error) as e:
        verify_v2(far, lookup)
    assert e.value.code == "AccessDenied"


def test_skewed_header_request_is_refused() -> None:
    req = header_signed("GET", "http://gw/bucket/key")
    with pytest.raises(S3Error) as e:
        verify_v2(req, lookup, now=datetime.now(UTC) + timedelta(hours=1))
    assert (e.value.code, e.value.status) == ("RequestTimeTooSkewed", 403)
    no_date = SigV4Request(
        "GET", req.path, "", [(n, v) for n, v in hdrs(req) if n.lower() != "date"]
    )
    with pytest.raises(S3Error) as e:
        verify_v2(no_date, lookup)
    assert (e.value.code, e.value.status) == ("AccessDenied", 403)


@pytest.mark.parametrize(
    "query",
    [
        "AWSAccessKeyId=" + AK,
        f"AWSAccessKeyId={AK}&Signature=abc",
        f"AWSAccessKeyId={AK}&Signature=abc&Expires=soon",
        f"Signature=abc&Expires={int(time.time()) + 60}",
        f"AWSAccessKeyId={AK}&Signature=abc&Expires=999999999999",
        f"AWSAccessKeyId={AK}&Signature=abc&Expires=253402300800",
        f"AWSAccessKeyId={AK}&Signature=abc&Expires=0",
    ],
)
def test_incomplete_or_malformed_queries_are_access_denied(query: str) -> None:
    with pytest.raises(S3Error) as e:
        verify_v2(SigV4Request("GET", "/b/k", query), lookup)
    assert (e.value.code, e.value.status) == ("AccessDenied", 403)


def test_mixed_mechanisms_and_malformed_header() -> None:
    url = presigned("GET", "http://gw/b/k")
    both = SigV4Request("GET", url.path, url.query, [("Authorization", f"AWS {AK}:x")])
    with pytest.raises(S3Error) as e:
        verify_v2(both, lookup)
    assert e.value.code == "InvalidArgument"
    with pytest.raises(S3Error) as e:
        verify_v2(
            SigV4Request("GET", url.path, url.query + "&X-Amz-Algorithm=AWS4-HMAC-SHA256"), lookup
        )
    assert e.value.code == "InvalidArgument"
    for bad in ("AWS ", f"AWS {AK}", f"AWS :{AK}", "AWS x:"):
        with pytest.raises(S3Error) as e:
            verify_v2(SigV4Request("GET", "/b/k", "", [("Authorization", bad)]), lookup)
        assert e.value.code == "AuthorizationHeaderMalformed", bad


def test_non_ascii_signature_never_matches() -> None:
    req = header_signed("GET", "http://gw/b/k")
    headers = [(n, f"AWS {AK}:é" if n == "Authorization" else v) for n, v in hdrs(req)]
    with pytest.raises(S3Error) as e:
        verify_v2(SigV4Request("GET", "/b/k", "", headers), lookup)
    assert e.value.code == "SignatureDoesNotMatch"


def test_turned_off_is_access_denied_and_sigv4_unaffected() -> None:
    for req in (header_signed("GET", "http://gw/b/k"), presigned("GET", "http://gw/b/k")):
        assert authenticate(req, lookup).access_key == AK
        with pytest.raises(S3Error) as e:
            authenticate(req, lookup, sigv2=False)
        assert (e.value.code, e.value.status) == ("AccessDenied", 403)
        assert "Signature Version 2 is turned off" in e.value.message
    anonymous = SigV4Request("GET", "/b/k")
    assert not is_sigv2(anonymous)
    assert authenticate(anonymous, lookup, sigv2=False).anonymous


@pytest.mark.parametrize("signed", ["/bucket", "/bucket/"])
@pytest.mark.parametrize("sent", ["/bucket", "/bucket/"])
def test_a_bucket_is_signed_with_or_without_its_slash(signed: str, sent: str) -> None:
    """botocore signs ``/bucket/`` (as AWS documents) for ``GET /bucket?list-type=2``."""
    req = header_signed("GET", "http://gw/bucket?list-type=2&prefix=a", auth_path=signed)
    assert verify_v2(SigV4Request("GET", sent, req.query, req.headers), lookup).access_key == AK
    # but never a key for its bucket
    with pytest.raises(S3Error):
        verify_v2(SigV4Request("GET", sent + "k", req.query, req.headers), lookup)


_TEXT = st.text(max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "é", ""]),
    path=_TEXT,
    query=_TEXT | st.builds(lambda s: f"AWSAccessKeyId={AK}&Expires={s}&Signature={s}", _TEXT),
    authorization=st.none() | st.builds(lambda s: "AWS " + s, _TEXT),
    date=st.none() | _TEXT,
    amz_date=st.none() | _TEXT,
)
def test_any_input_raises_only_s3_errors(
    method: str,
    path: str,
    query: str,
    authorization: str | None,
    date: str | None,
    amz_date: str | None,
) -> None:
    headers = [
        (n, v)
        for n, v in (("Authorization", authorization), ("Date", date), ("x-amz-date", amz_date))
        if v is not None
    ]
    req = SigV4Request(method, "/" + path, query, headers)
    with contextlib.suppress(S3Error):
        authenticate(req, lookup)
