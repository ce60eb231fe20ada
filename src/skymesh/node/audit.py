"""Answering audits: one Merkle chunk of a stored piece, with its inclusion proof.

Only that chunk is read from disk (one ``pread``); the proof comes from the leaf
hashes kept in the piece's record, which the node computed when it stored the
piece. A node whose bytes rotted answers the rotten chunk, and the auditor's
check against the root from the original receipt catches it.
"""

from __future__ import annotations

import asyncio
import os

from skymesh.codec.merkle import inclusion_proof
from skymesh.errors import BadRequest, NotFound
from skymesh.node.store import PieceStore
from skymesh.wire.node import AuditChunk


def _pread(path: str, size: int, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


async def audit_chunk(store: PieceStore, piece_id: str, index: int) -> AuditChunk:
    """Chunk ``index`` of ``piece_id`` and its proof; NotFound when the piece is not here."""
    meta = store.head(piece_id)
    leaf_count = len(meta.leaves)
    if not 0 <= index < leaf_count:
        raise BadRequest(f"chunk {index} out of range: piece {piece_id} has {leaf_count} chunks")
    offset = index * meta.chunk_size
    length = min(meta.chunk_size, meta.size - offset)
    try:
        data = await asyncio.to_thread(_pread, str(store.path(piece_id)), length, offset)
    except FileNotFoundError:
        raise NotFound(f"piece {piece_id} is not stored here") from None
    return AuditChunk(
        piece_id=piece_id,
        chunk_index=index,
        leaf_count=leaf_count,
        data=data,
        proof=inclusion_proof(meta.leaves, index),
    )
