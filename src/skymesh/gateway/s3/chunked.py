"""Incremental decoder for ``Content-Encoding: aws-chunked`` request bodies.

Current SDKs upload this way by default (botocore over https sends
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` with a CRC32 trailer; the Java and Go SDKs and
MinIO clients sign each chunk), so it is the common upload path, not a corner case.
The framing is::

    <hex size>[;chunk-signature=<64 hex>]\\r\\n<data>\\r\\n     (repeated)
    0[;chunk-signature=<64 hex>]\\r\\n
    [<trailer name>:<value>\\r\\n ...]                         (declared by x-amz-trailer)
    [x-amz-trailer-signature:<64 hex>\\r\\n]
    \\r\\n

The decoder is a push parser: the server feeds whatever the socket gave, split
anywhere, and gets payload slices back without copies. It holds at most one header
or trailer line (capped) between calls, never a chunk, so memory stays bounded
however large the chunks a client declares.

Data of a signed chunk is handed out before the chunk's signature is checked (the
signature covers the whole chunk, which we refuse to buffer). The caller must
therefore treat everything as provisional until :meth:`AwsChunkedDecoder.finish`
returns, and discard it if any call raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Final

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.sigv4 import EMPTY_SHA256, AuthResult, sign_string, signatures_equal

MAX_LINE: Final = 4096
MAX_TRAILERS: Final = 16

_HEADER: Final = 0
_DATA: Final = 1
_DATA_CR: Final = 2
_DATA_LF: Final = 3
_TRAILER: Final = 4
_DONE: Final = 5
_FAILED: Final = 6

_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


def decoded_content_length(headers: Mapping[str, str]) -> int | None:
    """``x-amz-decoded-content-length`` as an int; None when absent.

    Raises InvalidArgument when present but not a non-negative decimal: it is the
    object's size and ends up in metadata, so junk must not get further.
    """
    value = headers.get("x-amz-decoded-content-length")
    if value is None:
        value = next(
            (v for k, v in headers.items() if k.lower() == "x-amz-decoded-content-length"),
            None,
        )
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise s3_error(
            "InvalidArgument",
            "x-amz-decoded-content-length must be a non-negative integer.",
            ArgumentName="x-amz-decoded-content-length",
            ArgumentValue=value[:40],
        )
    return int(value)


class AwsChunkedDecoder:
    """Decode one aws-chunked body, verifying chunk and trailer signatures.

    ``auth`` decides what is checked: with ``payload_mode`` "streaming-signed" every
    chunk signature, with "streaming-signed-trailer" also the trailer signature; any
    other mode, or None, checks framing only (and ignores chunk-signature extensions).
    ``expect_trailer_names`` are the lowercase names from the ``x-amz-trailer``
    header: exactly those trailers must arrive. ``decoded_length`` is
    ``x-amz-decoded-content-length`` when known; the payload must match it.
    """

    def __init__(
        self,
        auth: AuthResult | None,
        expect_trailer_names: Collection[str] = frozenset(),
        *,
        decoded_length: int | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        mode = auth.payload_mode if auth is not None else "unsigned"
        self._signed = auth is not None and mode in ("streaming-signed", "streaming-signed-trailer")
        self._signed_trailer = auth is not None and mode == "streaming-signed-trailer"
        self._key = auth.signing_key if auth is not None else b""
        self._prefix = f"\n{auth.timestamp}\n{auth.scope}\n" if auth is not None else "\n\n\n"
        self._previous = auth.seed_signature if auth is not None else ""
        self._expected_trailers = frozenset(n.strip().lower() for n in expect_trailer_names)
        self._decoded_length = decoded_length
        self._max_line = max_line

        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._hasher: hashlib._Hash | None = None
        self._total = 0
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None
        self._error: S3Error | None = None

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        """Consume ``data``; return the payload it carried, as views into it.

        The views are only valid while ``data`` is unchanged: copy or consume them
        before reusing a bytearray.
        """
        if self._state == _FAILED:
            assert self._error is not None
            raise self._error
        try:
            return self._feed(data)
        except S3Error as err:
            self._state = _FAILED
            self._error = err
            raise

    def finish(self) -> dict[str, str]:
        """Declare the end of the body; return the trailers (lowercase names).

        Raises IncompleteBody when the body stopped early. A body that ends right
        after its last trailer line, without the blank line, is accepted: the
        trailers and their signature are complete by then, and some clients omit it.
        """
        if self._state == _FAILED:
            assert self._error is not None
            raise self._error
        if self._state == _TRAILER and not self._line:
            try:
                self._end_of_trailers()
            except S3Error as err:
                self._state = _FAILED
                self._error = err
                raise
        if self._state != _DONE:
            self._state = _FAILED
            self._error = s3_error(
                "IncompleteBody", "The aws-chunked body ended before its final chunk."
            )
            raise self._error
        return dict(self._trailers)

    # -- internals --------------------------------------------------------------------

    def _feed(self, data: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        # bytes and bytearray can search for LF without a copy; a memoryview cannot.
        buf = data.tobytes() if isinstance(data, memoryview) else data
        view = memoryview(buf)
        n = len(buf)
        pos = 0
        out: list[bytes | memoryview] = []
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, n - pos)
                piece = view[pos : pos + take]
                if self._hasher is not None:
                    self._hasher.update(piece)
                out.append(piece)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._end_of_chunk_data()
            elif state == _DATA_CR:
                if buf[pos] != 0x0D:
                    raise _framing("chunk data is not followed by CRLF")
                pos += 1
                self._state = _DATA_LF
            elif state == _DATA_LF:
                if buf[pos] != 0x0A:
                    raise _framing("chunk data is not followed by CRLF")
                pos += 1
                self._state = _HEADER
            elif state == _DONE:
                if buf[pos:].strip(b"\r\n"):
                    raise _framing("data follows the final chunk")
                pos = n
            else:
                pos = self._take_line(buf, pos)
        return out

    def _take_line(self, buf: bytes | bytearray, pos: int) -> int:
        """Collect bytes up to LF into the line buffer; process a complete line."""
        # The cap is on the line's content; its CR may take one byte more.
        room = self._max_line + 1 - len(self._line)
        end = min(len(buf), pos + room + 1)
        nl = buf.find(b"\n", pos, end)
        if nl < 0:
            if end - pos > room:
                raise _framing(f"a chunk header or trailer line exceeds {self._max_line} bytes")
            self._line += buf[pos:end]
            return end
        self._line += buf[pos:nl]
        line = bytes(self._line)
        self._line.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self._max_line:
            raise _framing(f"a chunk header or trailer line exceeds {self._max_line} bytes")
        if self._state == _HEADER:
            self._chunk_header(line)
        else:
            self._trailer_line(line)
        return nl + 1

    def _chunk_header(self, line: bytes) -> None:
        size_part, _, extensions = line.partition(b";")
        size_part = size_part.strip(b" \t")
        if not size_part or len(size_part) > 16 or not _HEX_DIGITS.issuperset(size_part):
            raise _framing(f"bad chunk size {size_part[:20]!r}")
        size = int(size_part, 16)
        signature = ""
        if self._signed:
            for ext in extensions.split(b";"):
                name, _, value = ext.partition(b"=")
                if name.strip() == b"chunk-signature":
                    signature = value.strip().decode("ascii", "replace")
            if not signature:
                raise _framing("a chunk has no chunk-signature")
        if self._decoded_length is not None and self._total + size > self._decoded_length:
            raise _framing("the chunks carry more data than x-amz-decoded-content-length")
        self._chunk_signature = signature
        if size == 0:
            if self._signed:
                self._check_chunk_signature(EMPTY_SHA256)
            self._state = _TRAILER
            return
        self._remaining = size
        self._total += size
        self._hasher = hashlib.sha256() if self._signed else None
        self._state = _DATA

    def _end_of_chunk_data(self) -> None:
        if self._hasher is not None:
            self._check_chunk_signature(self._hasher.hexdigest())
            self._hasher = None
        self._state = _DATA_CR

    def _check_chunk_signature(self, chunk_sha256: str) -> None:
        to_sign = (
            "AWS4-HMAC-SHA256-PAYLOAD"
            + self._prefix
            + f"{self._previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
        )
        expected = sign_string(self._key, to_sign)
        if not signatures_equal(expected, self._chunk_signature):
            raise s3_error(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
                StringToSign=to_sign,
                SignatureProvided=self._chunk_signature[:128],
            )
        self._previous = expected

    def _trailer_line(self, line: bytes) -> None:
        if not line.strip(b" \t"):
            self._end_of_trailers()
            return
        name_b, sep, value_b = line.partition(b":")
        name = name_b.strip(b" \t").decode("latin-1").lower()
        value = value_b.strip(b" \t").decode("latin-1")
        if not sep or not name:
            raise _trailer_error(f"trailer line {line[:60]!r} is not name:value")
        if name == "x-amz-trailer-signature":
            if not self._signed_trailer or self._trailer_signature is not None:
                raise _trailer_error("unexpected x-amz-trailer-signature")
            self._trailer_signature = value
            return
        if self._trailer_signature is not None:
            raise _trailer_error("a trailer follows x-amz-trailer-signature")
        if name not in self._expected_trailers:
            raise _trailer_error(f"trailer {name[:60]!r} was not declared in x-amz-trailer")
        if name in self._trailers or len(self._trailers) >= MAX_TRAILERS:
            raise _trailer_error(f"trailer {name[:60]!r} repeated")
        self._trailers[name] = value

    def _end_of_trailers(self) -> None:
        missing = self._expected_trailers - self._trailers.keys()
        if missing:
            raise _trailer_error(f"declared trailer(s) {', '.join(sorted(missing))} missing")
        if self._signed_trailer:
            if self._trailer_signature is None:
                raise _trailer_error("x-amz-trailer-signature missing")
            canonical = "".join(f"{k}:{v}\n" for k, v in sorted(self._trailers.items()))
            to_sign = (
                "AWS4-HMAC-SHA256-TRAILER"
                + self._prefix
                + f"{self._previous}\n{hashlib.sha256(canonical.encode('latin-1')).hexdigest()}"
            )
            expected = sign_string(self._key, to_sign)
            if not signatures_equal(expected, self._trailer_signature):
                raise s3_error(
                    "SignatureDoesNotMatch",
                    "The trailer signature we calculated does not match the signature you "
                    "provided.",
                    StringToSign=to_sign,
                    SignatureProvided=self._trailer_signature[:128],
                )
        if self._decoded_length is not None and self._total != self._decoded_length:
            raise s3_error(
                "IncompleteBody",
                f"The chunks carry {self._total} bytes but x-amz-decoded-content-length "
                f"is {self._decoded_length}.",
            )
        self._state = _DONE


def _framing(what: str) -> S3Error:
    return s3_error("InvalidArgument", f"Malformed aws-chunked body: {what}.")


def _trailer_error(what: str) -> S3Error:
    return s3_error("MalformedTrailerError", f"Malformed aws-chunked trailer: {what}.")
