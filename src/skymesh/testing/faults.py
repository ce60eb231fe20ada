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
| ``forge`` | the true bytes, but the Merkle leaves (``/hashes``, audit proofs) are forged |

``forge`` is the subtler liar: reads decode, so only a verifier of proofs (the
auditor; a reader's Merkle fallback) can tell. :func:`disk_full` makes writes fail
half-way with ENOSPC instead, as a node whose disk filled up under it.
:func:`hang` makes a node look SIGSTOPped to everyone else: still heartbeating,
so listed online, while its announced address takes connections and never answers.
:mod:`skymesh.testing.faulty_node` runs a node process with any of these.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Literal, cast

import msgspec

from skymesh.errors import NotFound
from skymesh.node import store as store_module
from skymesh.node.api import NODE
from skymesh.node.service import NodeService
from skymesh.node.store import PieceMeta, PieceStore

Mode = Literal["corrupt", "swap", "missing", "forge"]


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
        meta = self.inner.head(piece_id)
        if self.mode == "forge":
            self.reads += 1
            # Every leaf wrong: proofs and hash lists no longer lead to the recorded root.
            forged = [bytes([leaf[0] ^ 0xFF]) + leaf[1:] for leaf in meta.leaves]
            return msgspec.structs.replace(meta, leaves=forged)
        return meta

    def path(self, piece_id: str) -> Path:
        real = self.inner.path(piece_id)
        if not real.exists() or self.mode == "forge":
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


def disk_full() -> None:
    """From now on every piece write in this process fails half-way with ENOSPC.

    It replaces the store's write primitive, so the real store's own handling runs:
    the node answers 507 and must leave nothing behind (no temp file, no bytes
    counted). Process-wide: only for a node in a process of its own
    (:mod:`skymesh.testing.faulty_node`), never inside a shared test process.
    """

    def full(fd: int, bufs: list[bytes]) -> None:
        if bufs and len(bufs[0]) > 1:
            os.write(fd, bufs[0][: len(bufs[0]) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    store_module._writev_all = full


# ---- hung nodes: a node that accepts connections and never answers


class Hang:
    """A listening socket nobody accepts from, announced as a node's address.

    The kernel completes every TCP handshake into the listen backlog and buffers
    what is sent, exactly as for a SIGSTOPped process; nothing is ever read or
    answered. The node itself keeps running, so its heartbeats keep it online.
    """

    def __init__(self, node: NodeService) -> None:
        self.node = node
        self.real_address = node.link.address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.address = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        """Announce the real address again and drop (reset) every queued connection."""
        self.node.link.address = self.real_address
        self.node.heartbeat.trigger()
        self.sock.close()


def hang(node: NodeService) -> Hang:
    """Make ``node`` unreachable but online: its next heartbeat announces a black hole."""
    h = Hang(node)
    node.link.address = h.address
    node.heartbeat.trigger()
    return h


# ---- end hung nodes
