"""The bodies of control requests (XML), read whole and held to what was signed.

DeleteObjects, the ACL, tagging, CORS and versioning PUTs, CreateBucket and
CompleteMultipartUpload carry small XML bodies that decide what the request does.
They are checked exactly as a PUT's data is (:class:`PutBody`: the signed SHA-256,
``aws-chunked`` chunk signatures, ``Content-MD5``, ``x-amz-checksum-*``) before a
handler sees a byte, so a body swapped in transit is refused and changes nothing.

A payload the signature does not cover (``UNSIGNED-PAYLOAD``, which SDKs send over
https and presigned URLs carry, or an unsigned ``aws-chunked`` stream) must then be
covered by a ``Content-MD5`` or ``x-amz-checksum-*`` header that the signature does
cover and the body matches; S3 requires one for DeleteObjects and the like, and we
require it for every control body, since each one changes state.
"""

from __future__ import annotations

import hashlib

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.body import PutBody
from skymesh.gateway.s3.handlers.checksums import requested
from skymesh.gateway.s3.request import S3Request

#: payload modes in which the signature does not cover the body's bytes
UNCOVERED_MODES = ("unsigned", "streaming-unsigned-trailer")


def require_signed_cover(req: S3Request, body: PutBody) -> None:
    """Refuse an unsigned payload that no signed digest header vouches for."""
    if req.auth.payload_mode not in UNCOVERED_MODES:
        return
    _, header_value, _ = requested(req.http.headers)
    if header_value is not None:
        return  # x-amz-checksum-* headers are always signed (sigv4 refuses unsigned x-amz-*)
    if body.content_md5 is not None:
        if "content-md5" in req.auth.signed_headers:
            return
        raise s3_error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned="content-md5",
        )
    raise s3_error(
        "InvalidRequest",
        "Missing required header for this request: Content-MD5 OR x-amz-checksum-*",
    )


async def read_small_body(req: S3Request, cap: int) -> bytes:
    """The whole body of a control request, at most ``cap`` payload bytes, verified.

    Raises ``XAmzContentSHA256Mismatch``, ``SignatureDoesNotMatch`` (a chunk),
    ``BadDigest``, ``InvalidDigest``, ``InvalidRequest`` (no digest for an unsigned
    payload) or ``MaxMessageLengthExceeded``.
    """
    # PutBody refuses a declared size over the cap, and a body without one as it
    # streams past it
    body = PutBody(
        req, cap, f"the body may be at most {cap} bytes", too_large_code="MaxMessageLengthExceeded"
    )
    require_signed_cover(req, body)
    data = bytearray()
    async for chunk in body.chunks():
        data += chunk
    for hasher in body.hashers:
        hasher.update(data)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() if body.content_md5 else ""
    body.verify(md5, len(data))
    return bytes(data)
