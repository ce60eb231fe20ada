"""Pure rules behind S3 checksums and conditional writes: check values, header parsing,
precondition outcomes."""

from __future__ import annotations

import base64
import hashlib
import random
import zlib

import pytest

from skymesh.client import crc
from skymesh.codec import isal
from skymesh.coordinator.metainfo.checks import check_write_conditions
from skymesh.errors import BadRequest, NotFound, PreconditionFailed
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.handlers.checksums import Checksum, requested, response_headers

CHECK = b"123456789"  # the CRC catalogue's check input


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("crc32", bytes.fromhex("cbf43926")),
        ("crc32c", bytes.fromhex("e3069283")),
        ("crc64nvme", bytes.fromhex("ae8b14860a799888")),
        ("sha1", hashlib.sha1(CHECK).digest()),
        ("sha256", hashlib.sha256(CHECK).digest()),
    ],
)
def test_check_values_in_pieces(algorithm: str, expected: bytes) -> None:
    c = Checksum(algorithm)
    for piece in (CHECK[:2], memoryview(CHECK[2:7]), bytearray(CHECK[7:])):
        c.update(piece)
    assert c.digest() == expected
    assert c.b64() == base64.b64encode(expected).decode()


def test_large_crc32_through_isal_is_zlibs() -> None:
    if isal.library() is None:
        pytest.skip("no ISA-L here: zlib computes every CRC32")
    assert crc._native() is not None  # ISA-L is there, so it is used
    data = bytearray(random.Random(7).randbytes(3 * 1024 * 1024 + 5))
    view = memoryview(data)
    assert crc.crc32(data) == zlib.crc32(data)
    # chained, from odd offsets, through every path: native (writable), zlib (read-only, small)
    value = 0
    for piece in (
        view[:1],
        view[1 : 1 + crc.MIN_NATIVE + 3],
        bytes(view[crc.MIN_NATIVE + 4 : 1 << 20]),
        view[1 << 20 :],
    ):
        value = crc.crc32(piece, value)
    assert value == zlib.crc32(data)
    c = Checksum("crc32c")
    c.update(view[:12345])
    c.update(view[12345:])
    one = Checksum("crc32c")
    one.update(bytes(data))
    assert c.digest() == one.digest()


def _b64(n: int) -> str:
    return base64.b64encode(b"\0" * n).decode()


def test_requested() -> None:
    assert requested({}) == (None, None, False)
    assert requested({"x-amz-checksum-crc32": _b64(4)}) == ("crc32", _b64(4), False)
    assert requested({"x-amz-trailer": "x-amz-checksum-crc64nvme"}) == ("crc64nvme", None, True)
    assert requested({"x-amz-sdk-checksum-algorithm": "SHA256"}) == ("sha256", None, False)
    same = {"x-amz-sdk-checksum-algorithm": "CRC32C", "x-amz-checksum-crc32c": _b64(4)}
    assert requested(same) == ("crc32c", _b64(4), False)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": _b64(4), "x-amz-checksum-sha1": _b64(20)},
        {"x-amz-checksum-crc32": _b64(4), "x-amz-trailer": "x-amz-checksum-crc32c"},
        {"x-amz-sdk-checksum-algorithm": "SHA1", "x-amz-checksum-crc32": _b64(4)},
        {"x-amz-sdk-checksum-algorithm": "MD4"},
        {"x-amz-trailer": "x-amz-checksum-md4"},
        {"x-amz-checksum-crc32": _b64(8)},
        {"x-amz-checksum-sha256": "not base64!"},
    ],
)
def test_requested_refuses(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as e:
        requested(headers)
    assert e.value.code == "InvalidRequest"


def test_response_headers() -> None:
    assert response_headers({"crc32": "AAAAAA=="}) == {
        "x-amz-checksum-crc32": "AAAAAA==",
        "x-amz-checksum-type": "FULL_OBJECT",
    }
    assert response_headers({"sha1": "abc-3"})["x-amz-checksum-type"] == "COMPOSITE"
    assert response_headers({"unknown": "x"}) == {}


@pytest.mark.parametrize(
    ("current", "if_match", "if_none_match", "error"),
    [
        (None, "", "", None),
        ("e1", "", "", None),
        (None, "", "*", None),
        ("e1", "", "*", PreconditionFailed),
        ("e1", '"e1"', "", None),
        ("e1", '"e0", "e1"', "", None),
        ("e1", "*", "", None),
        ("e1", '"e2"', "", PreconditionFailed),
        (None, '"e1"', "", NotFound),
        (None, "", '"e1"', BadRequest),
    ],
)
def test_write_conditions(
    current: str | None, if_match: str, if_none_match: str, error: type[Exception] | None
) -> None:
    if error is None:
        check_write_conditions(current, if_match, if_none_match)
    else:
        with pytest.raises(error):
            check_write_conditions(current, if_match, if_none_match)
