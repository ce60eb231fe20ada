"""What a node asks of its piece store.

:class:`PieceStore` is the interface the node's HTTP API, audits, heartbeats and
reconciliation use; :class:`~skymesh.node.diskstore.DiskPieceStore` is the store
of pieces on local disk, and the test harness's
:class:`~skymesh.testing.faults.FaultyStore` wraps one to lie or fail on demand.
One contract suite (``tests/unit/test_piece_store_contract.py``) runs over both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from skymesh.codec.merkle import Buffer

META_VERSION = 1


class PieceMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a store records of a piece; the disk store keeps it, msgpack, after the
    piece's bytes in the piece's file (:mod:`skymesh.node.piecefile`). A stored
    format: versioned."""

    version: int = META_VERSION
    piece_id: str
    size: int
    chunk_size: int
    merkle_root: bytes
    leaves: list[bytes]
    serial: str  # the order that stored it
    stored_at: float


class PieceStore(Protocol):
    """Pieces held by one node, with capacity accounting.

    Every method that takes a piece id raises
    :class:`~skymesh.errors.BadRequest` for anything but 64 lowercase hex
    characters, before it touches storage.
    """

    @property
    def capacity_bytes(self) -> int: ...

    @property
    def used_bytes(self) -> int:
        """Bytes of stored pieces."""
        ...

    @property
    def reserved_bytes(self) -> int:
        """Bytes promised to pieces being received."""
        ...

    @property
    def free_bytes(self) -> int:
        """Capacity neither used nor reserved (never negative)."""
        ...

    @property
    def piece_count(self) -> int: ...

    async def write(
        self,
        piece_id: str,
        chunks: AsyncIterator[Buffer],
        max_bytes: int,
        expected_size: int | None,
        serial: str,
    ) -> PieceMeta:
        """Receive a piece from ``chunks``, hash it, and store it durably.

        Raises :class:`~skymesh.errors.TooLarge` as soon as more than ``max_bytes``
        arrive, :class:`~skymesh.errors.InsufficientStorage` when the piece does
        not fit (or the disk fills up), :class:`~skymesh.errors.BadRequest` when the
        body is shorter or longer than ``expected_size``,
        :class:`~skymesh.errors.Conflict` when the piece is already stored (or
        being stored). Whatever fails leaves nothing behind and nothing reserved.
        """
        ...

    def exists(self, piece_id: str) -> bool: ...

    def head(self, piece_id: str) -> PieceMeta:
        """The record of a stored piece; :class:`~skymesh.errors.NotFound` when it is not stored."""
        ...

    def path(self, piece_id: str) -> Path:
        """The file holding the bytes of ``piece_id`` (which may not exist): reads
        open it, so that a ranged read is an ``lseek`` and ``sendfile`` can serve it.
        A piece file (:mod:`skymesh.node.piecefile`): the piece's bytes from offset 0,
        their length from :func:`~skymesh.node.piecefile.data_size`."""
        ...

    def iter_piece_ids(self) -> Iterator[str]:
        """Ids of stored pieces, in no order (may block on the disk: use from a thread)."""
        ...

    async def delete(self, piece_id: str) -> bool:
        """Remove a piece; False when it was not stored."""
        ...

    def close(self) -> None:
        """Release the store; writes in flight should be finished first."""
        ...


class StoreOpener(Protocol):
    """How a node opens its store: ``(root, capacity_bytes, chunk_size, fsync)``."""

    def __call__(
        self, root: Path, capacity_bytes: int, chunk_size: int, fsync: bool
    ) -> Awaitable[PieceStore]: ...
