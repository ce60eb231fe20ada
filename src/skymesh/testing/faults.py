"""Faults at the storage seam, for tests only: a node whose piece store lies.

:func:`inject` puts a :class:`FaultyStore` between a running node's HTTP API and
its real :class:`~skymesh.node.store.PieceStore`; the bytes on disk stay intact, so
:func:`heal` makes the node honest again. Like Storj's testing backend and Tahoe's
no-network grid, it models a dishonest or broken node without touching its code.

| mode | what reads (GET, audits) get |
|---|---|
| ``corrupt`` | the right length, every 997th byte flipped |
| ``swap`` | the bytes of another piece the node holds (a node that keeps one piece and answers with it) |
| ``missing`` | nothing: the piece is not there (404) |
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal, cast

from skymesh.errors import NotFound
from skymesh.node.api import NODE
from skymesh.node.service import NodeService
from skymesh.node.store import PieceMeta, PieceStore

Mode = Literal["corrupt", "swap", "missing"]


class FaultyStore:
    """Delegates to a real store, except that piece reads lie as ``mode`` says."""

    def __init__(self, inner: PieceStore, mode: Mode) -> None:
        self.inner = inner
        self.mode = mode
        self._scratch = Path(tempfile.mkdtemp(prefix="skymesh-faults-"))
        self.reads = 0  # piece reads served falsely

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def head(self, piece_id: str) -> PieceMeta:
        if self.mode == "missing":
            raise NotFound(f"piece {piece_id} is not stored here")
        return self.inner.head(piece_id)

    def path(self, piece_id: str) -> Path:
        real = self.inner.path(piece_id)
        if not real.exists():
            return real
        self.reads += 1
        if self.mode == "missing":
            return self._scratch / "absent"
        if self.mode == "swap":
            for other in self.inner.iter_piece_ids():
                if other != piece_id:
                    return self.inner.path(other)
            return real
        fake = self._scratch / piece_id
        data = bytearray(real.read_bytes())
        for i in range(0, len(data), 997):
            data[i] ^= 0xFF
        fake.write_bytes(bytes(data))
        return fake


def inject(node: NodeService, mode: Mode) -> FaultyStore:
    """Make ``node`` answer piece reads falsely from now on."""
    ctx = node.app[NODE]
    inner = ctx.store.inner if isinstance(ctx.store, FaultyStore) else ctx.store
    faulty = FaultyStore(inner, mode)
    ctx.store = cast(PieceStore, faulty)
    return faulty


def heal(node: NodeService) -> None:
    """Undo :func:`inject`."""
    ctx = node.app[NODE]
    if isinstance(ctx.store, FaultyStore):
        ctx.store = ctx.store.inner
