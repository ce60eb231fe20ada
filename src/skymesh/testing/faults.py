"""Faults at the storage seam, for tests only: a node whose piece store lies or fails.

:class:`FaultyStore` is a :class:`~skymesh.node.store.PieceStore` around a real
:class:`~skymesh.node.diskstore.DiskPieceStore`. While its ``fault`` is None it is
that store; set a fault and it misbehaves from the next call on, with the bytes on
disk left intact, so clearing the fault makes the node honest again. Like Storj's
testing backend and Tahoe's no-network grid, it models a dishonest or broken node
without touching the node's code.

| fault | what happens |
|---|---|
| ``corrupt`` | reads (GET, audits) get the right length, every 997th byte flipped |
| ``swap`` | reads get the bytes of another piece the node holds (a node that keeps one piece and answers with it) |
| ``missing`` | reads get nothing: the piece is not there (404) |
| ``forge`` | reads get the true bytes, but the Merkle leaves (``/hashes``, audit proofs) are forged |
| ``full`` | every write fails half-way with ENOSPC, as a disk that filled up under the node |

``forge`` is the subtler liar: reads decode, so only a verifier of proofs (the
auditor; a reader's Merkle fallback) can tell. ``full`` fails inside the disk
store's own writes, so its handling runs: the node answers 507 and leaves nothing
behind (no temp file, no bytes counted).

:class:`WriteGate` holds piece writes where they arrive until a test opens it, to put
something else (an overwrite, a delete) between a writer's read and its commit.

:class:`Hang` makes a node look SIGSTOPped to everyone else: still heartbeating,
so listed online, while its announced address takes connections and never answers.
The planet (:mod:`skymesh.testing.planet`) applies these by name;
:mod:`skymesh.testing.faulty_node` runs a node process with a store fault.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import msgspec

from skymesh.codec.merkle import Buffer
from skymesh.errors import NotFound
from skymesh.node.diskstore import DiskPieceStore, writev_all
from skymesh.node.piecefile import data_size_at
from skymesh.node.service import NodeService
from skymesh.node.store import PieceMeta

Fault = Literal["corrupt", "swap", "missing", "forge", "full"]


class FaultyStore:
    """A disk piece store that lies or fails as ``fault`` says; honest while it is None."""

    def __init__(
        self,
        root: Path,
        capacity_bytes: int,
        chunk_size: int,
        fsync: bool = True,
        *,
        fault: Fault | None = None,
    ) -> None:
        self.fault = fault
        self.gate: WriteGate | None = None  # writes wait here while set
        self.reads = 0  # piece reads served falsely
        self._scratch: Path | None = None  # where lying reads are written
        self.inner = DiskPieceStore(root, capacity_bytes, chunk_size, fsync, writev=self._writev)

    @classmethod
    async def open(
        cls,
        root: Path,
        capacity_bytes: int,
        chunk_size: int,
        fsync: bool = True,
        *,
        fault: Fault | None = None,
    ) -> FaultyStore:
        """Open a store without blocking the event loop on the initial scan."""
        return await asyncio.to_thread(
            functools.partial(cls, root, capacity_bytes, chunk_size, fsync, fault=fault)
        )

    def close(self) -> None:
        self.inner.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @property
    def capacity_bytes(self) -> int:
        return self.inner.capacity_bytes

    @property
    def used_bytes(self) -> int:
        return self.inner.used_bytes

    @property
    def reserved_bytes(self) -> int:
        return self.inner.reserved_bytes

    @property
    def free_bytes(self) -> int:
        return self.inner.free_bytes

    @property
    def piece_count(self) -> int:
        return self.inner.piece_count

    async def write(
        self,
        piece_id: str,
        chunks: AsyncIterator[Buffer],
        max_bytes: int,
        expected_size: int | None,
        serial: str,
    ) -> PieceMeta:
        if self.gate is not None:
            await self.gate.hold()
        return await self.inner.write(piece_id, chunks, max_bytes, expected_size, serial)

    def exists(self, piece_id: str) -> bool:
        return self.inner.exists(piece_id)

    def head(self, piece_id: str) -> PieceMeta:
        meta = self.inner.head(piece_id)
        if self.fault == "missing":
            raise NotFound(f"piece {piece_id} is not stored here")
        if self.fault == "forge":
            self.reads += 1
            # Every leaf wrong: proofs and hash lists no longer lead to the recorded root.
            forged = [bytes([leaf[0] ^ 0xFF]) + leaf[1:] for leaf in meta.leaves]
            return msgspec.structs.replace(meta, leaves=forged)
        return meta

    def path(self, piece_id: str) -> Path:
        real = self.inner.path(piece_id)
        if self.fault not in ("corrupt", "swap", "missing") or not real.exists():
            return real
        self.reads += 1
        if self.fault == "missing":
            return self._scratch_dir() / "absent"
        if self.fault == "swap":
            for other in self.inner.iter_piece_ids():
                if other != piece_id:
                    return self.inner.path(other)
            return real
        fake = self._scratch_dir() / piece_id
        data = bytearray(real.read_bytes())
        for i in range(0, data_size_at(real), 997):  # the piece's bytes, not its record
            data[i] ^= 0xFF
        fake.write_bytes(bytes(data))
        return fake

    def iter_piece_ids(self) -> Iterator[str]:
        return self.inner.iter_piece_ids()

    async def delete(self, piece_id: str) -> bool:
        return await self.inner.delete(piece_id)

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="skymesh-faults-"))
        return self._scratch

    def _writev(self, fd: int, bufs: list[Buffer]) -> None:
        """The inner store's disk writes (disk threads): half of the first buffer, then
        ENOSPC, while the fault is ``full``."""
        if self.fault != "full":
            writev_all(fd, bufs)
            return
        if bufs and len(bufs[0]) > 1:
            os.write(fd, bufs[0][: len(bufs[0]) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class WriteGate:
    """Holds every piece write of the stores it is set on until :meth:`open`."""

    def __init__(self, stores: list[FaultyStore]) -> None:
        self.arrived = asyncio.Event()  # set once the first write is held
        self._opened = asyncio.Event()
        self._stores = stores
        for store in stores:
            store.gate = self

    async def hold(self) -> None:
        self.arrived.set()
        await self._opened.wait()

    def open(self) -> None:
        """Let the held writes go on, and stop holding new ones."""
        for store in self._stores:
            if store.gate is self:
                store.gate = None
        self._opened.set()


class Hang:
    """A listening socket nobody accepts from, announced as a node's address.

    The kernel completes every TCP handshake into the listen backlog and buffers
    what is sent, exactly as for a SIGSTOPped process; nothing is ever read or
    answered. The node itself keeps running, so its heartbeats keep it online.
    Make one on the node's event loop: it triggers the node's heartbeat.
    """

    def __init__(self, node: NodeService) -> None:
        self.node = node
        self.real_address = node.link.address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.address = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        node.link.address = self.address
        node.heartbeat.trigger()

    def close(self) -> None:
        """Announce the real address again and drop (reset) every queued connection."""
        self.node.link.address = self.real_address
        self.node.heartbeat.trigger()
        self.sock.close()
