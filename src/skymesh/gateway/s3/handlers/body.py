"""Request bodies as plaintext streams, with every check S3 clients count on.

A PUT body may come raw (with its SHA-256 signed, or ``UNSIGNED-PAYLOAD``) or as
``aws-chunked`` frames (with per-chunk signatures and/or trailing checksums).
:class:`PutBody` yields the payload bytes and, through :meth:`verify`, checks the
declared length, the signed SHA-256, Content-MD5 and the S3 checksum (header or
trailer) before the object is committed: a body that fails any check is never
made visible. Lengths are checked as the body streams: no byte past the declared
length, or past the request's limit, reaches a segment. The checksum it verified is what :meth:`verify` returns, for the
object's sealed metadata.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator

from skymesh.client.writer import Chunk, Hasher
from skymesh.gateway.s3.chunked import AwsChunkedDecoder, decoded_content_length
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.checksums import (
    HEADER_PREFIX,
    Checksum,
    check_value,
    requested,
    verified,
)
from skymesh.gateway.s3.request import S3Request

READ_CHUNK = 1024 * 1024


class PutBody:
    """One PUT or UploadPart body of at most ``max_size`` bytes (``EntityTooLarge``
    beyond: at once when the declared length says so, else at the first byte past it)."""

    def __init__(
        self,
        req: S3Request,
        max_size: int,
        too_large: str,
        too_large_code: str = "EntityTooLarge",
    ):
        self.req = req
        h = req.http.headers
        mode = req.auth.payload_mode
        self.chunked = mode.startswith("streaming")
        self.max_size = max_size
        self._too_large = (too_large_code, too_large)
        self.size: int | None = None
        if self.chunked:
            self.size = decoded_content_length(h)
            if self.size is None:
                raise s3_error(
                    "MissingContentLength", "aws-chunked bodies need x-amz-decoded-content-length"
                )
        elif (declared := h.get("Content-Length")) is not None:
            try:
                self.size = int(declared)
            except ValueError as e:
                raise s3_error("InvalidArgument", "the content length is not a number") from e
            if self.size < 0:
                raise s3_error("InvalidArgument", "negative content length")
        if self.size is not None and self.size > max_size:
            raise s3_error(*self._too_large)
        self.hashers: list[Hasher] = []
        self._sha256: hashlib._Hash | None = None
        if mode == "signed" and req.auth.payload_sha256:
            self._sha256 = hashlib.sha256()
            self.hashers.append(self._sha256)
        self.content_md5: bytes | None = None
        if "Content-MD5" in h:
            try:
                self.content_md5 = base64.b64decode(h["Content-MD5"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise s3_error("InvalidDigest", "Content-MD5 is not valid base64") from e
            if len(self.content_md5) != 16:
                raise s3_error("InvalidDigest", "Content-MD5 must be 16 bytes")
        algorithm, self._checksum_value, self._checksum_trailer = requested(h)
        if self._checksum_trailer and not self.chunked:
            raise s3_error("InvalidRequest", "x-amz-trailer needs an aws-chunked body")
        self.checksum: Checksum | None = None
        if algorithm is not None:
            self.checksum = Checksum(algorithm)
            self.hashers.append(self.checksum)
        self.trailers: dict[str, str] = {}
        trailer_names = {
            t.strip().lower() for t in h.get("x-amz-trailer", "").split(",") if t.strip()
        }
        # the decoder stops at the first chunk that would carry a byte past the
        # declared length, before any of it is stored
        self._decoder = (
            AwsChunkedDecoder(req.auth, trailer_names, decoded_length=self.size)
            if self.chunked
            else None
        )

    async def chunks(self) -> AsyncIterator[Chunk]:
        content = self.req.http.content
        if self._decoder is None:
            # aiohttp stops a body at its Content-Length; one without (chunked
            # transfer encoding) is stopped here at max_size
            total = 0
            while True:
                data = await content.readany()
                if not data:
                    return
                total += len(data)
                if total > self.max_size:
                    raise s3_error(*self._too_large)
                yield data
        decoder = self._decoder
        while True:
            data = await content.readany()
            if not data:
                break
            # views into ``data`` (bytes: they stay valid), copied once, into a segment
            for piece in decoder.feed(data):
                yield piece
        self.trailers = decoder.finish()

    def verify(self, md5_hex: str, size: int) -> dict[str, str]:
        """Run just before the commit: raise (and so abort) when the body is not what was promised.

        Answers the checksum to keep with the object (``{"crc32": "<base64>"}``), or {}.
        """
        if self.size is not None and size != self.size:
            raise s3_error(
                "IncompleteBody",
                f"received {size} bytes, the request declared {self.size}",
            )
        if self._sha256 is not None and self._sha256.hexdigest() != self.req.auth.payload_sha256:
            raise s3_error(
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 does not match x-amz-content-sha256",
            )
        if self.content_md5 is not None and self.content_md5.hex() != md5_hex:
            raise s3_error(
                "BadDigest", "the Content-MD5 you specified did not match what we received"
            )
        return self._verify_checksum()

    def _verify_checksum(self) -> dict[str, str]:
        c = self.checksum
        if c is None:
            return {}
        expected = self._checksum_value
        if self._checksum_trailer:
            trailer = self.trailers.get(HEADER_PREFIX + c.algorithm)
            if trailer is None:
                raise s3_error(
                    "MalformedTrailerError",
                    f"the body ended without its {HEADER_PREFIX}{c.algorithm} trailer",
                )
            expected = check_value(c.algorithm, trailer)
        return verified(c, expected)
