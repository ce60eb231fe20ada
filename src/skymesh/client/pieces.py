"""Moving one piece (or a byte range of it) between the client and one node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import msgspec

from skymesh import errors
from skymesh.rpc import error_from_body
from skymesh.wire.messages import (
    ORDER_HEADER,
    AddressedOrder,
    DownloadPiece,
    ErrorBody,
    PieceHashes,
)
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import Signed, encode_header


def _piece_url(address: str, piece_id: str) -> str:
    return f"{address.rstrip('/')}/v1/pieces/{piece_id}"


async def _raise_for(resp: aiohttp.ClientResponse, what: str) -> None:
    raw = await resp.read()
    try:
        body = msgspec.json.decode(raw, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = ErrorBody(code="", message=f"{what}: HTTP {resp.status}")
    raise error_from_body(resp.status, body)


async def put_piece(
    session: aiohttp.ClientSession,
    target: AddressedOrder,
    root_piece_id: str,
    body: AsyncIterator[bytes | bytearray],
    size: int,
) -> Signed:
    """Stream one piece to its node; answers the node's signed receipt."""
    piece_id = derive_piece_id(root_piece_id, target.piece_num)
    headers = {
        ORDER_HEADER: encode_header(target.order),
        "Content-Length": str(size),
        "Content-Type": "application/octet-stream",
    }
    try:
        async with session.put(
            _piece_url(target.address, piece_id), data=body, headers=headers
        ) as resp:
            if resp.status != 201:
                await _raise_for(resp, f"storing piece on {target.node_id}")
            raw = await resp.read()
    except (aiohttp.ClientError, OSError) as e:
        raise errors.Unavailable(f"node {target.node_id} at {target.address}: {e}") from e
    try:
        return msgspec.json.decode(raw, type=Signed)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errors.IntegrityError(f"node {target.node_id} sent a malformed receipt") from e


async def get_piece_range(
    session: aiohttp.ClientSession,
    piece: DownloadPiece,
    root_piece_id: str,
    start: int,
    end: int,
) -> bytes:
    """Bytes [start, end) of one piece."""
    piece_id = derive_piece_id(root_piece_id, piece.piece_num)
    headers = {ORDER_HEADER: encode_header(piece.order), "Range": f"bytes={start}-{end - 1}"}
    try:
        async with session.get(_piece_url(piece.address, piece_id), headers=headers) as resp:
            if resp.status not in (200, 206):
                await _raise_for(resp, f"reading piece from {piece.node_id}")
            data = await resp.read()
    except (aiohttp.ClientError, OSError) as e:
        raise errors.Unavailable(f"node {piece.node_id} at {piece.address}: {e}") from e
    if resp.status == 200:
        data = data[start:end]
    if len(data) != end - start:
        raise errors.IntegrityError(
            f"node {piece.node_id} sent {len(data)} bytes for a {end - start}-byte range"
        )
    return data


async def get_piece_hashes(
    session: aiohttp.ClientSession, piece: DownloadPiece, root_piece_id: str
) -> PieceHashes:
    """The Merkle leaves of a piece, to verify ranges against the root we trust."""
    piece_id = derive_piece_id(root_piece_id, piece.piece_num)
    headers = {ORDER_HEADER: encode_header(piece.order)}
    try:
        async with session.get(
            _piece_url(piece.address, piece_id) + "/hashes", headers=headers
        ) as resp:
            if resp.status != 200:
                await _raise_for(resp, f"reading piece hashes from {piece.node_id}")
            raw = await resp.read()
    except (aiohttp.ClientError, OSError) as e:
        raise errors.Unavailable(f"node {piece.node_id} at {piece.address}: {e}") from e
    try:
        return msgspec.json.decode(raw, type=PieceHashes)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise errors.IntegrityError(f"node {piece.node_id} sent malformed hashes") from e
