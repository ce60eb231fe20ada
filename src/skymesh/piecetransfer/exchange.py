"""Requests to one node's piece routes: store a piece, read a byte range of it, read its hashes.

Each request carries the coordinator's order for that piece and node; a refusal
comes back as the node's own error (``ErrorBody``), a node that cannot be reached
as :class:`~skymesh.errors.Unavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
import msgspec

from skymesh import errors
from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, verify_chunks
from skymesh.rpc import error_from_body
from skymesh.wire.base import ErrorBody
from skymesh.wire.metainfo import AddressedOrder, DownloadPiece
from skymesh.wire.node import PIECE_HASHES_PATH, PIECE_PATH, PieceHashes
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import ORDER_HEADER, Signed, encode_header

T = TypeVar("T")


def piece_url(address: str, piece_id: str, path: str = PIECE_PATH) -> str:
    """The URL of one of a node's piece routes (``wire.node.PIECE_*_PATH``) for ``piece_id``."""
    return address.rstrip("/") + path.format(piece_id=piece_id)


def _request_parts(
    target: AddressedOrder | DownloadPiece,
    root_piece_id: str,
    path: str,
    headers: dict[str, str] | None,
    timeout: aiohttp.ClientTimeout | None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL, headers (the order among them) and extra options of a request for ``target``."""
    piece_id = derive_piece_id(root_piece_id, target.piece_num)
    url = piece_url(target.address, piece_id, path)
    all_headers = {ORDER_HEADER: encode_header(target.order), **(headers or {})}
    # a caller may bound a stall (sock_read) tighter than the session's timeout
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    return url, all_headers, extra


def _refusal(
    status: int, raw: bytes, target: AddressedOrder | DownloadPiece
) -> errors.SkymeshError:
    """The node's own error for an answer of an unexpected ``status``."""
    try:
        body = msgspec.json.decode(raw, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = ErrorBody(code="", message=f"node {target.node_id}: HTTP {status}")
    return error_from_body(status, body)


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    target: AddressedOrder | DownloadPiece,
    root_piece_id: str,
    expect: tuple[int, ...],
    path: str = PIECE_PATH,
    headers: dict[str, str] | None = None,
    data: Any = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> tuple[int, bytes]:
    """One request to the node holding ``target``'s piece, with its order; errors as ours."""
    url, all_headers, extra = _request_parts(target, root_piece_id, path, headers, timeout)
    try:
        async with session.request(method, url, headers=all_headers, data=data, **extra) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, OSError) as e:
        raise errors.Unavailable(f"node {target.node_id} at {target.address}: {e}") from e
    if status not in expect:
        raise _refusal(status, raw, target)
    return status, raw


def _decode(raw: bytes, kind: type[T], target: AddressedOrder | DownloadPiece) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errors.IntegrityError(f"node {target.node_id} sent a malformed answer") from e


async def put_piece(
    session: aiohttp.ClientSession,
    target: AddressedOrder,
    root_piece_id: str,
    body: AsyncIterator[bytes | bytearray | memoryview],
    size: int,
) -> Signed:
    """Stream one piece to its node; answers the node's signed receipt."""
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    _, raw = await _exchange(
        session, "PUT", target, root_piece_id, (201,), headers=headers, data=body
    )
    return _decode(raw, Signed, target)


async def get_piece_range(
    session: aiohttp.ClientSession,
    piece: DownloadPiece,
    root_piece_id: str,
    start: int,
    end: int,
    timeout: aiohttp.ClientTimeout | None = None,
) -> bytes:
    """Bytes [start, end) of one piece."""
    headers = {"Range": f"bytes={start}-{end - 1}"}
    status, data = await _exchange(
        session, "GET", piece, root_piece_id, (200, 206), headers=headers, timeout=timeout
    )
    if status == 200:
        data = data[start:end]
    if len(data) != end - start:
        raise errors.IntegrityError(
            f"node {piece.node_id} sent {len(data)} bytes for a {end - start}-byte range"
        )
    return data


async def open_piece_range(
    session: aiohttp.ClientSession,
    piece: DownloadPiece,
    root_piece_id: str,
    start: int,
    end: int,
    read_bufsize: int,
    timeout: aiohttp.ClientTimeout | None = None,
) -> tuple[aiohttp.ClientResponse, int]:
    """A request for bytes [start, end) of one piece whose body is left to stream.

    Answers the open response, whose body the caller reads and then releases (or
    closes, to drop the connection), and how many bytes of the body come before
    ``start`` (a node that answers 200 sends the whole piece). ``read_bufsize``
    bounds what the connection buffers ahead of the reader: past twice that, it
    stops reading the socket until the reader catches up.
    """
    url, headers, extra = _request_parts(
        piece, root_piece_id, PIECE_PATH, {"Range": f"bytes={start}-{end - 1}"}, timeout
    )
    try:
        resp = await session.request(
            "GET", url, headers=headers, read_bufsize=read_bufsize, **extra
        )
    except (aiohttp.ClientError, OSError) as e:
        raise errors.Unavailable(f"node {piece.node_id} at {piece.address}: {e}") from e
    try:
        if resp.status not in (200, 206):
            raise _refusal(resp.status, await resp.read(), piece)
        skip = start if resp.status == 200 else 0
        size = resp.content_length
        if size is not None and (size < end if resp.status == 200 else size != end - start):
            raise errors.IntegrityError(
                f"node {piece.node_id} sends {size} bytes for a {end - start}-byte range"
            )
    except (aiohttp.ClientError, OSError) as e:
        resp.close()
        raise errors.Unavailable(f"node {piece.node_id} at {piece.address}: {e}") from e
    except BaseException:
        resp.close()
        raise
    return resp, skip


async def get_piece_hashes(
    session: aiohttp.ClientSession,
    piece: DownloadPiece,
    root_piece_id: str,
    timeout: aiohttp.ClientTimeout | None = None,
) -> PieceHashes:
    """The Merkle leaves of a piece, to verify ranges against the root we trust."""
    _, raw = await _exchange(
        session, "GET", piece, root_piece_id, (200,), path=PIECE_HASHES_PATH, timeout=timeout
    )
    return _decode(raw, PieceHashes, piece)


async def get_verified_range(
    session: aiohttp.ClientSession,
    piece: DownloadPiece,
    root_piece_id: str,
    piece_size: int,
    start: int,
    end: int,
    timeout: aiohttp.ClientTimeout | None = None,
) -> bytes:
    """Bytes [start, end) of one piece, checked against the Merkle root the coordinator recorded.

    Reads the piece's hashes, then the range widened to whole Merkle chunks, and
    verifies those chunks; :class:`~skymesh.errors.IntegrityError` when the node's
    hashes describe another piece or its bytes do not match ``piece.merkle_root``.
    """
    hashes = await get_piece_hashes(session, piece, root_piece_id, timeout=timeout)
    chunk = hashes.chunk_size
    if chunk != DEFAULT_CHUNK_SIZE or hashes.size != piece_size:
        raise errors.IntegrityError(f"node {piece.node_id} sent the hashes of another piece")
    aligned = start - start % chunk
    aligned_end = min(piece_size, -(-end // chunk) * chunk)
    data = await get_piece_range(session, piece, root_piece_id, aligned, aligned_end, timeout)
    if not verify_chunks(piece.merkle_root, hashes.leaves, chunk, aligned, data):
        raise errors.IntegrityError(
            f"piece {piece.piece_num} from node {piece.node_id} does not match its Merkle root"
        )
    return data[start - aligned : end - aligned]
