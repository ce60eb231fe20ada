"""aws-chunked decoding: AWS's signed example, botocore's bodies, every split point."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import zlib
from collections.abc import Iterable
from typing import Any

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.gateway.s3.chunked import MAX_LINE, AwsChunkedDecoder, decoded_content_length
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.sigv4 import EMPTY_SHA256, AuthResult, PayloadMode, derive_signing_key

SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
TIMESTAMP = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"


def make_auth(mode: PayloadMode, seed: str = SEED) -> AuthResult:
    return AuthResult(
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret=SK,
        payload_mode=mode,
        signing_key=derive_signing_key(SK, "20130524", "us-east-1"),
        seed_signature=seed,
        timestamp=TIMESTAMP,
        scope=SCOPE,
        region="us-east-1",
    )


def _sign(auth: AuthResult, string_to_sign: str) -> str:
    return hmac.new(auth.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def encode(
    payload: bytes,
    chunk_size: int,
    auth: AuthResult | None = None,
    trailers: dict[str, str] | None = None,
) -> bytes:
    """A client's encoder, written from AWS's description independently of the decoder."""
    signed = auth is not None and auth.payload_mode.startswith("streaming-signed")
    previous = auth.seed_signature if auth is not None else ""
    out = bytearray()
    chunks = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    for chunk in [*chunks, b""]:
        if signed:
            assert auth is not None
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    auth.timestamp,
                    auth.scope,
                    previous,
                    EMPTY_SHA256,
                    hashlib.sha256(chunk).hexdigest(),
                ]
            )
            previous = _sign(auth, to_sign)
            out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode()
        else:
            out += f"{len(chunk):x}\r\n".encode()
        if chunk:
            out += chunk + b"\r\n"
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    if auth is not None and auth.payload_mode == "streaming-signed-trailer":
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted((trailers or {}).items()))
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                auth.timestamp,
                auth.scope,
                previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        out += f"x-amz-trailer-signature:{_sign(auth, to_sign)}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def decode(
    pieces: Iterable[bytes | bytearray | memoryview],
    auth: AuthResult | None,
    trailer_names: Iterable[str] = (),
    **kw: Any,
) -> tuple[bytes, dict[str, str]]:
    decoder = AwsChunkedDecoder(auth, set(trailer_names), **kw)
    out = bytearray()
    for piece in pieces:
        for data in decoder.feed(piece):
            out += data
    return bytes(out), decoder.finish()


def split(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(body)) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(body[last:p])
        last = p
    pieces.append(body[last:])
    return pieces


def error(
    pieces: Iterable[bytes], auth: AuthResult | None, names: Iterable[str] = (), **kw: Any
) -> S3Error:
    with pytest.raises(S3Error) as info:
        decode(pieces, auth, names, **kw)
    return info.value


# -- AWS's STREAMING-AWS4-HMAC-SHA256-PAYLOAD example ------------------------------------

AWS_PAYLOAD = b"a" * 66560
AWS_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n"
    + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n"
    + b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n"
    + b"\r\n"
)


def test_aws_example_body() -> None:
    assert len(AWS_BODY) == 66824  # the example's Content-Length
    payload, trailers = decode([AWS_BODY], make_auth("streaming-signed"), decoded_length=66560)
    assert payload == AWS_PAYLOAD and trailers == {}


def test_aws_example_matches_test_encoder() -> None:
    """The encoder used by the property tests reproduces AWS's bytes exactly."""
    assert encode(AWS_PAYLOAD, 65536, make_auth("streaming-signed")) == AWS_BODY


@pytest.mark.parametrize(
    "cut",
    [0, 1, 5, 21, 86, 87, 88, 89, 100, 65623, 65624, 65625, 65626, 65700, 66735, 66822, 66823],
)
def test_aws_example_split_points(cut: int) -> None:
    payload, _ = decode([AWS_BODY[:cut], AWS_BODY[cut:]], make_auth("streaming-signed"))
    assert payload == AWS_PAYLOAD


@pytest.mark.parametrize(
    ("offset", "what"),
    [
        (30, "first signature"),
        (200, "first chunk data"),
        (65700, "second signature"),
        (66000, "second chunk data"),
        (66780, "final signature"),
    ],
)
def test_aws_example_tampering(offset: int, what: str) -> None:
    body = bytearray(AWS_BODY)
    body[offset] = ord("b") if body[offset] != ord("b") else ord("c")
    err = error([bytes(body)], make_auth("streaming-signed"))
    assert err.code == "SignatureDoesNotMatch", what
    assert err.status == 403


def test_wrong_seed_signature() -> None:
    err = error([AWS_BODY], make_auth("streaming-signed", seed="0" * 64))
    assert err.code == "SignatureDoesNotMatch"


def test_chunks_cannot_be_reordered_or_dropped() -> None:
    auth = make_auth("streaming-signed")
    body = encode(b"x" * 10 + b"y" * 10, 10, auth)
    first_end = body.index(b"\r\n", body.index(b"xxxx")) + 2
    second_end = body.index(b"\r\n", body.index(b"yyyy")) + 2
    swapped = body[first_end:second_end] + body[:first_end] + body[second_end:]
    assert error([swapped], auth).code == "SignatureDoesNotMatch"
    dropped = body[first_end:]
    assert error([dropped], auth).code == "SignatureDoesNotMatch"


def test_missing_chunk_signature_in_signed_mode() -> None:
    err = error([b"3\r\nabc\r\n0\r\n\r\n"], make_auth("streaming-signed"))
    assert err.code == "InvalidArgument"


# -- botocore's STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies ------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5000])
@pytest.mark.parametrize("chunk_size", [1024, 1024 * 1024])
def test_botocore_wrapper_bodies(size: int, chunk_size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=chunk_size,
    )
    body = wrapper.read()
    auth = make_auth("streaming-unsigned-trailer")
    got, trailers = decode([body], auth, ["x-amz-checksum-crc32"], decoded_length=size)
    assert got == payload
    assert trailers == {"x-amz-checksum-crc32": crc32_b64(payload)}
    # byte-at-a-time, the worst a socket can do
    if size <= 1025:
        got, _ = decode([body[i : i + 1] for i in range(len(body))], auth, ["x-amz-checksum-crc32"])
        assert got == payload


def test_botocore_wrapper_without_checksum() -> None:
    body = AwsChunkedWrapper(io.BytesIO(b"hello"), chunk_size=2).read()
    assert body.endswith(b"0\r\n\r\n")
    assert decode([body], None) == (b"hello", {})


def test_boto3_put_object_over_https() -> None:
    """The exact request boto3 sends by default over https, end to end."""
    import boto3
    from botocore.config import Config

    from skymesh.gateway.s3.sigv4 import SigV4Request, verify

    class Captured(Exception):
        pass

    seen: list[Any] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request)
        raise Captured

    client = boto3.session.Session(
        aws_access_key_id="AK", aws_secret_access_key="SK", region_name="us-east-1"
    ).client(
        "s3", endpoint_url="https://s3.example.com", config=Config(retries={"max_attempts": 0})
    )
    client.meta.events.register("before-send.s3.*", capture)
    payload = b"0123456789" * 1000
    with pytest.raises(Captured):
        client.put_object(Bucket="b", Key="k", Body=payload)
    request = seen[0]
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):  # awscrt's signer adds it itself
        headers.insert(0, ("Host", "s3.example.com"))
    auth = verify(SigV4Request("PUT", "/b/k", "", headers), {"AK": "SK"}.get)
    assert auth.payload_mode == "streaming-unsigned-trailer"
    hdr = {k.lower(): v for k, v in headers}
    assert hdr["content-encoding"] == "aws-chunked"
    names = {n.strip() for n in hdr["x-amz-trailer"].split(",")}
    body = request.body.read()
    got, trailers = decode(
        split(body, [7, 100, 5000]),
        auth,
        names,
        decoded_length=decoded_content_length(hdr),
    )
    assert got == payload
    assert trailers["x-amz-checksum-crc32"] == crc32_b64(payload)


# -- every split point, hand-built bodies ----------------------------------------------------

SMALL = b"The quick brown fox jumps over the lazy dog. " * 4
CASES: dict[str, tuple[PayloadMode, dict[str, str]]] = {
    "unsigned-trailer": ("streaming-unsigned-trailer", {"x-amz-checksum-crc32": crc32_b64(SMALL)}),
    "signed": ("streaming-signed", {}),
    "signed-trailer": ("streaming-signed-trailer", {"x-amz-checksum-crc32c": "sOO8/Q=="}),
    "signed-two-trailers": (
        "streaming-signed-trailer",
        {"x-amz-checksum-sha256": "abc=", "x-amz-checksum-crc32": crc32_b64(SMALL)},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_every_split_point(case: str) -> None:
    mode, trailers = CASES[case]
    auth = make_auth(mode)
    body = encode(SMALL, 64, auth, trailers)
    for cut in range(len(body) + 1):
        got, got_trailers = decode([body[:cut], body[cut:]], auth, trailers)
        assert (got, got_trailers) == (SMALL, trailers), cut


@pytest.mark.parametrize("case", CASES)
def test_every_truncation_fails(case: str) -> None:
    """A body cut anywhere is refused, except right before its final blank line (the
    trailers are complete there; some clients omit that line)."""
    mode, trailers = CASES[case]
    auth = make_auth(mode)
    body = encode(SMALL, 64, auth, trailers)
    for cut in range(len(body)):
        decoder = AwsChunkedDecoder(auth, set(trailers))
        out = bytearray()
        try:
            for piece in decoder.feed(body[:cut]):
                out += piece
            got_trailers = decoder.finish()
        except S3Error as err:
            assert err.code in ("IncompleteBody", "MalformedTrailerError"), (cut, err.code)
        else:
            assert cut == len(body) - 2, cut
            assert (bytes(out), got_trailers) == (SMALL, trailers)


def test_every_byte_flip_in_signed_trailer_body_is_caught_or_harmless() -> None:
    """Changing any byte of a fully signed body never yields other data or trailers."""
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    auth = make_auth("streaming-signed-trailer")
    body = encode(SMALL, 64, auth, trailers)
    for i in range(len(body)):
        tampered = bytearray(body)
        tampered[i] ^= 0x01
        try:
            result = decode([bytes(tampered)], auth, trailers)
        except S3Error:
            continue
        assert result == (SMALL, trailers), i


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    chunk_size=st.integers(1, 1100),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    mode=st.sampled_from(
        ["streaming-unsigned-trailer", "streaming-signed", "streaming-signed-trailer"]
    ),
)
def test_roundtrip_any_split(
    payload: bytes, chunk_size: int, cuts: list[int], mode: PayloadMode
) -> None:
    auth = make_auth(mode)
    trailers = {} if mode == "streaming-signed" else {"x-amz-checksum-crc32": crc32_b64(payload)}
    body = encode(payload, chunk_size, auth, trailers)
    got = decode(split(body, cuts), auth, trailers, decoded_length=len(payload))
    assert got == (payload, trailers)


@settings(max_examples=60, deadline=None)
@given(junk=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_junk_never_crashes(junk: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes either decode or raise S3Error, never anything else."""
    for auth in (None, make_auth("streaming-signed-trailer")):
        with contextlib.suppress(S3Error):
            decode(split(junk, cuts), auth, ["x-amz-checksum-crc32"])


# -- framing errors and limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "IncompleteBody"),
        (b"5\r\nabc", "IncompleteBody"),
        (b"3\r\nabc\r\n", "IncompleteBody"),
        (b"3\r\nabc\r\n0", "IncompleteBody"),
        (b"3\r\nabcX\n0\r\n\r\n", "InvalidArgument"),
        (b"3\r\nabc\rX0\r\n\r\n", "InvalidArgument"),
        (b"zz\r\nabc\r\n0\r\n\r\n", "InvalidArgument"),
        (b"\r\nabc\r\n0\r\n\r\n", "InvalidArgument"),
        (b"0x3\r\nabc\r\n0\r\n\r\n", "InvalidArgument"),
        (b"-3\r\nabc\r\n0\r\n\r\n", "InvalidArgument"),
        (b"11111111111111111\r\n", "InvalidArgument"),
        (b"3\r\nabc\r\n0\r\n\r\nextra", "InvalidArgument"),
        (b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
        (b"0\r\nnot a trailer\r\n\r\n", "MalformedTrailerError"),
    ],
)
def test_framing_errors(body: bytes, code: str) -> None:
    assert error([body], None).code == code


@pytest.mark.parametrize(
    ("body", "names", "mode"),
    [
        (b"0\r\n\r\n", ["x-amz-checksum-crc32"], "streaming-unsigned-trailer"),
        (
            b"0\r\nx-amz-checksum-crc32:a\r\nx-amz-checksum-crc32:a\r\n\r\n",
            ["x-amz-checksum-crc32"],
            "streaming-unsigned-trailer",
        ),
        (
            b"0\r\nx-amz-checksum-crc32:a\r\nx-amz-trailer-signature:00\r\n\r\n",
            ["x-amz-checksum-crc32"],
            "streaming-unsigned-trailer",
        ),
    ],
)
def test_trailer_errors(body: bytes, names: list[str], mode: PayloadMode) -> None:
    assert error([body], make_auth(mode), names).code == "MalformedTrailerError"


def test_signed_trailer_needs_signature_and_checks_it() -> None:
    auth = make_auth("streaming-signed-trailer")
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    body = encode(SMALL, 100, auth, trailers)
    without = body.replace(body[body.index(b"x-amz-trailer-signature") : body.rindex(b"\r\n")], b"")
    assert error([without], auth, trailers).code == "MalformedTrailerError"
    wrong = body.replace(trailers["x-amz-checksum-crc32"].encode(), b"AAAAAA==")
    assert error([wrong], auth, trailers).code == "SignatureDoesNotMatch"


def test_unsigned_mode_ignores_chunk_signatures() -> None:
    """Framing-only decoding accepts signed framing (a client signing chunks of a
    request we treat as unsigned loses nothing)."""
    body = encode(SMALL, 50, make_auth("streaming-signed"))
    assert decode([body], None) == (SMALL, {})
    assert decode([body], make_auth("streaming-unsigned-trailer")) == (SMALL, {})


def test_decoded_length_mismatch() -> None:
    body = encode(SMALL, 50)
    assert error([body], None, decoded_length=len(SMALL) + 1).code == "IncompleteBody"
    assert error([body], None, decoded_length=len(SMALL) - 1).code == "InvalidArgument"


def test_line_cap_bounds_memory() -> None:
    decoder = AwsChunkedDecoder(None)
    decoder.feed(b"1" + b";x=" + b"y" * (MAX_LINE - 10))
    with pytest.raises(S3Error) as info:
        decoder.feed(b"y" * 20)
    assert info.value.code == "InvalidArgument"
    # the decoder stays failed
    with pytest.raises(S3Error):
        decoder.feed(b"\r\n")
    with pytest.raises(S3Error):
        decoder.finish()


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_header_at_exactly_the_cap_is_accepted(eol: bytes) -> None:
    header = b"3;" + b"x" * (MAX_LINE - 2)
    assert len(header) == MAX_LINE
    body = header + eol + b"abc\r\n0\r\n\r\n"
    assert decode([body], None) == (b"abc", {})
    assert decode(split(body, [MAX_LINE - 1, MAX_LINE, MAX_LINE + 1]), None) == (b"abc", {})
    too_long = b"3;" + b"x" * (MAX_LINE - 1) + eol + b"abc\r\n0\r\n\r\n"
    assert error([too_long], None).code == "InvalidArgument"
    assert error(split(too_long, [MAX_LINE, MAX_LINE + 1]), None).code == "InvalidArgument"


def test_pieces_are_views_without_copies() -> None:
    data = b"a" * 1000
    body = b"3e8\r\n" + data + b"\r\n0\r\n\r\n"
    decoder = AwsChunkedDecoder(None)
    pieces = decoder.feed(body)
    assert len(pieces) == 1 and isinstance(pieces[0], memoryview)
    assert pieces[0].obj is body
    decoder.finish()


def test_large_declared_chunk_streams() -> None:
    """A 64 MiB chunk passes through without being held: output grows with input."""
    decoder = AwsChunkedDecoder(None)
    assert decoder.feed(b"4000000\r\n") == []
    block = b"z" * (1 << 20)
    for _ in range(64):
        pieces = decoder.feed(block)
        assert sum(len(p) for p in pieces) == len(block)
    decoder.feed(b"\r\n0\r\n\r\n")
    assert decoder.finish() == {}
    assert decoder.done


def test_memoryview_and_bytearray_input() -> None:
    body = encode(SMALL, 30)
    assert decode([memoryview(body)], None)[0] == SMALL
    assert decode([bytearray(body)], None)[0] == SMALL
    assert decode([memoryview(body)[::1]], None)[0] == SMALL


def test_trailing_crlf_after_end_is_tolerated() -> None:
    assert decode([b"0\r\n\r\n\r\n"], None) == (b"", {})


def test_trailer_names_case_and_spaces() -> None:
    body = b"0\r\nX-Amz-Checksum-CRC32 : AAAAAA== \r\n\r\n"
    assert decode([body], None, [" X-AMZ-CHECKSUM-CRC32"]) == (
        b"",
        {"x-amz-checksum-crc32": "AAAAAA=="},
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"x-amz-decoded-content-length": "66560"}, 66560),
        ({"X-Amz-Decoded-Content-Length": " 0 "}, 0),
    ],
)
def test_decoded_content_length(headers: dict[str, str], expected: int | None) -> None:
    assert decoded_content_length(headers) == expected


@pytest.mark.parametrize("value", ["-1", "1e3", "", "١٢", "9" * 20])
def test_decoded_content_length_junk(value: str) -> None:
    with pytest.raises(S3Error) as info:
        decoded_content_length({"x-amz-decoded-content-length": value})
    assert info.value.code == "InvalidArgument"
