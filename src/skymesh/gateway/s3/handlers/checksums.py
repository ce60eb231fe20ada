"""S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256).

Current SDKs send one of these with almost every upload, either as an
``x-amz-checksum-<alg>`` header or in an ``aws-chunked`` trailer. Each is
computed as the body streams (a hasher handed to the client, so it runs in the
same worker thread as MD5) and only for the algorithm the request names: these
run on every PUT and CPU per byte is the budget, so each CRC runs on the fastest
routine at hand (CRC32 through ISA-L, :mod:`skymesh.client.crc`; CRC32C and
CRC64NVME through awscrt). Values travel base64-encoded, big-endian for the CRCs,
as S3 defines them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence

from awscrt import checksums as _crt  # type: ignore[import-untyped]

from skymesh.client.crc import crc32
from skymesh.gateway.s3.errors import s3_error

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
HEADER_PREFIX = "x-amz-checksum-"
_DIGEST_SIZE = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Checksum:
    """A running checksum of one algorithm; ``update`` takes any buffer (a client Hasher)."""

    def __init__(self, algorithm: str):
        if algorithm not in ALGORITHMS:
            raise s3_error(
                "InvalidRequest",
                f"checksum algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}",
            )
        self.algorithm = algorithm
        self._crc = 0
        self._hash = (
            hashlib.sha1(usedforsecurity=False)
            if algorithm == "sha1"
            else hashlib.sha256()
            if algorithm == "sha256"
            else None
        )

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "crc32":
            self._crc = crc32(data, self._crc)
        elif self.algorithm == "crc32c":
            self._crc = _crt.crc32c(data, self._crc)
        else:
            self._crc = _crt.crc64nvme(data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(_DIGEST_SIZE[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def verified(checksum: Checksum | None, expected: str | None) -> dict[str, str]:
    """The checksum to keep with an object (``{"crc32": "<base64>"}``, or {}), once its
    whole body went through ``checksum``; ``BadDigest`` when the client's ``expected``
    value differs."""
    if checksum is None:
        return {}
    actual = checksum.b64()
    if expected is not None and expected != actual:
        raise s3_error(
            "BadDigest",
            f"The {checksum.algorithm.upper()} you specified did not match the calculated checksum.",
        )
    return {checksum.algorithm: actual}


def check_value(algorithm: str, value: str) -> str:
    """A client-sent checksum, refused early when it cannot be one of ``algorithm``."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise s3_error(
            "InvalidRequest", f"Value for {HEADER_PREFIX}{algorithm} header is invalid."
        ) from e
    if len(raw) != _DIGEST_SIZE[algorithm]:
        raise s3_error("InvalidRequest", f"Value for {HEADER_PREFIX}{algorithm} header is invalid.")
    return value.strip()


def requested(headers: Mapping[str, str]) -> tuple[str | None, str | None, bool]:
    """(algorithm, value from a header, value comes in a trailer) for one request.

    S3 accepts one checksum per request: two headers, or a header and a
    different trailer, are ``InvalidRequest``.
    """
    found: dict[str, str] = {}
    for alg in ALGORITHMS:
        value = headers.get(HEADER_PREFIX + alg)
        if value is not None:
            found[alg] = check_value(alg, value)
    trailer_algs = [
        t.strip().lower()[len(HEADER_PREFIX) :]
        for t in headers.get("x-amz-trailer", "").split(",")
        if t.strip().lower().startswith(HEADER_PREFIX)
    ]
    for alg in trailer_algs:
        if alg not in ALGORITHMS:
            raise s3_error("InvalidRequest", f"unknown checksum trailer {HEADER_PREFIX}{alg}")
    sdk = headers.get("x-amz-sdk-checksum-algorithm", "").strip().lower() or None
    if sdk is not None and sdk not in ALGORITHMS:
        raise s3_error(
            "InvalidRequest",
            f"x-amz-sdk-checksum-algorithm must be one of {', '.join(a.upper() for a in ALGORITHMS)}",
        )
    names = set(found) | set(trailer_algs)
    if len(names) > 1 or (sdk is not None and names and sdk not in names):
        raise s3_error(
            "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple are provided."
        )
    if found:
        alg, value = next(iter(found.items()))
        return alg, value, False
    if trailer_algs:
        return trailer_algs[0], None, True
    return sdk, None, False


def response_headers(checksums: Mapping[str, str]) -> dict[str, str]:
    """What GET/HEAD answer with ``x-amz-checksum-mode: ENABLED``."""
    out: dict[str, str] = {}
    for alg, value in checksums.items():
        if alg in ALGORITHMS:
            out[HEADER_PREFIX + alg] = value
            out["x-amz-checksum-type"] = "COMPOSITE" if "-" in value else "FULL_OBJECT"
    return out


def multipart_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What CreateMultipartUpload answers for ``x-amz-checksum-algorithm`` (and ``-type``).

    S3 echoes the algorithm and the type the object's checksum will have:
    COMPOSITE by default, FULL_OBJECT for CRC64NVME (which has no composite).
    skymesh computes only composites, and CRC64NVME's full-object checksum is
    not computed for multipart objects (CompleteMultipartUpload answers none);
    a full-object CRC32/CRC32C is refused rather than silently made composite,
    and SHA-1/SHA-256 have no full-object form (``InvalidRequest``, as on S3).
    """
    alg = headers.get("x-amz-checksum-algorithm", "").strip().lower()
    kind = headers.get("x-amz-checksum-type", "").strip().upper()
    if not alg:
        if kind:
            raise s3_error(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used with the"
                " x-amz-checksum-algorithm header.",
            )
        return {}
    if alg not in ALGORITHMS:
        raise s3_error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the valid"
            " types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
        )
    default = "FULL_OBJECT" if alg == "crc64nvme" else "COMPOSITE"
    kind = kind or default
    if kind not in ("COMPOSITE", "FULL_OBJECT"):
        raise s3_error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if kind != default:
        if alg in ("sha1", "sha256", "crc64nvme"):
            raise s3_error(
                "InvalidRequest",
                f"The {alg.upper()} checksum algorithm does not support {kind} checksum type.",
            )
        raise s3_error(
            "NotImplemented", f"skymesh does not compute a full-object {alg.upper()} for multipart"
        )
    return {"x-amz-checksum-algorithm": alg.upper(), "x-amz-checksum-type": kind}


def composite(part_checksums: Sequence[str]) -> tuple[str, str] | None:
    """S3's multipart checksum, (algorithm, ``base64(checksum of part checksums)-N``).

    ``part_checksums`` are the parts' stored ``"<algorithm>:<base64>"``, in order.
    None unless every part has one, all of one algorithm: S3 then has no composite
    either. CRC64NVME has none (S3 defines only a full-object CRC64NVME).
    """
    if not part_checksums or not all(part_checksums):
        return None
    algs = {c.partition(":")[0] for c in part_checksums}
    alg = algs.pop()
    if algs or alg not in ALGORITHMS or alg == "crc64nvme":
        return None
    combined = Checksum(alg)
    for c in part_checksums:
        combined.update(base64.b64decode(c.partition(":")[2]))
    return alg, f"{combined.b64()}-{len(part_checksums)}"
