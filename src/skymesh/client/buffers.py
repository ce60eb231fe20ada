"""Segment buffers: a memory budget for uploads, and buffers kept for the next one.

Every upload reads its body into segment buffers (up to two segments, 64 MiB
each). A :class:`BufferPool` lends them out under one ``budget`` of bytes, shared
by every client that holds the pool (a gateway gives one pool to all its access
keys' clients): a buffer that does not fit waits a short while for others to come
back and is then refused with :class:`SlowDown` (503), so many slow uploads cannot
make a gateway hold more than its budget.

A new ``bytearray`` of a part's size (8 MiB from boto3) is zero-filled under the
GIL and then faulted in page by page as the body is copied into it, on every part
of a large upload, so returned buffers are kept for the next upload, up to
``keep_bytes`` (inside the budget: kept buffers are dropped when a loan needs the
room). A buffer comes back for reuse only from an upload that succeeded; after a
failure a worker thread may still be reading it, so it is dropped and only its
bytes return to the budget.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from skymesh.errors import Unavailable

DEFAULT_KEEP_BYTES = 64 * 1024 * 1024
MIN_POOLED = 256 * 1024  # smaller buffers cost less to make than to keep track of
DEFAULT_WAIT = 2.0  # seconds a loan may wait for the budget before SlowDown


class SlowDown(Unavailable):
    """No buffer memory is free for this request now; retry shortly (S3's ``SlowDown``)."""

    code = "SlowDown"


class BufferPool:
    """Buffers lent under a byte budget (None: no budget), free ones kept by exact size."""

    def __init__(
        self,
        budget: int | None = None,
        *,
        keep_bytes: int = DEFAULT_KEEP_BYTES,
        wait: float = DEFAULT_WAIT,
    ) -> None:
        if budget is not None and budget < 1:
            raise ValueError(f"buffer budget must be positive, not {budget}")
        self.budget = budget
        self.keep_bytes = keep_bytes if budget is None else min(keep_bytes, budget)
        self.wait = wait
        self._free: OrderedDict[int, list[bytearray]] = OrderedDict()
        self._held = 0  # bytes of free buffers kept
        self._lent = 0  # bytes of buffers out on loan
        self._returned = asyncio.Event()  # set whenever a loan comes back
        self.refused = 0  # loans refused with SlowDown, for metrics
        self.peak_lent = 0  # the most bytes ever lent at once, for metrics

    @property
    def held(self) -> int:
        """Bytes of free buffers kept for reuse."""
        return self._held

    @property
    def lent(self) -> int:
        """Bytes of buffers out on loan."""
        return self._lent

    async def take(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes (contents undefined), waiting up to
        :attr:`wait` seconds for the budget; :class:`SlowDown` when it does not come."""
        buf = self.try_take(size)
        if buf is not None:
            return buf
        if self.budget is not None and size > self.budget:
            self.refused += 1
            raise SlowDown(f"a buffer of {size} bytes exceeds this gateway's {self.budget}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while (left := deadline - loop.time()) > 0:
            self._returned.clear()
            try:
                async with asyncio.timeout(left):  # not wait_for: see loops.DrivenLoop._sleep
                    await self._returned.wait()
            except TimeoutError:
                break
            buf = self.try_take(size)
            if buf is not None:
                return buf
        self.refused += 1
        raise SlowDown(
            f"no room for a {size}-byte buffer: {self._lent} of {self.budget} bytes are lent"
        )

    def try_take(self, size: int) -> bytearray | None:
        """A buffer of ``size`` bytes if the budget has room now, else None."""
        if self.budget is not None:
            if self._lent + size > self.budget:
                return None
            self._drop_free(self.budget - self._lent - size)
        self._lent += size
        self.peak_lent = max(self.peak_lent, self._lent)
        stack = self._free.get(size) if size >= MIN_POOLED else None
        if stack:
            buf = stack.pop()
            if not stack:
                del self._free[size]
            self._held -= size
            return buf
        return bytearray(size)

    def give(self, buf: bytearray, *, reuse: bool = True) -> None:
        """Return a lent buffer; ``reuse`` False when something may still be reading it."""
        size = len(buf)
        self._lent -= size
        self._returned.set()
        if not reuse or size < MIN_POOLED or size > self.keep_bytes:
            return
        self._drop_free(self.keep_bytes - size)
        self._free.setdefault(size, []).append(buf)
        self._free.move_to_end(size)
        self._held += size

    def _drop_free(self, room: int) -> None:
        """Drop kept buffers, oldest first, until at most ``room`` bytes are kept."""
        while self._held > max(0, room) and self._free:
            old_size, stack = next(iter(self._free.items()))
            stack.pop(0)
            self._held -= old_size
            if not stack:
                del self._free[old_size]


def unshared(buf: bytearray) -> bool:
    """Whether no memoryview of ``buf`` is alive, so nothing can still be reading it.

    A transport may keep what it was given to write (an SSL transport's backlog, or
    Python 3.12's socket transport, which queues views instead of copying), and a
    caller may keep a chunk it was handed; all of them hold a memoryview, and a
    bytearray refuses to change size while any view of it is alive. Trying that is
    the test: the last byte is cut off and put back (no reallocation either way).
    """
    if not buf:
        return True
    last = buf[-1]
    try:
        del buf[-1]
    except BufferError:
        return False
    buf.append(last)
    return True


class ReusedBuffer:
    """One output buffer written part after part, each time only once it is unshared.

    A reader decodes every part into :meth:`take`'s view and hands out views of it,
    valid until its next step. A consumer that keeps one anyway (or a transport
    that has not sent it yet) keeps the old buffer alive and unwritten: the next
    part goes to a new one, and the old one is left to the garbage collector.
    The buffer is lent by ``pool`` where its budget has room (and goes back there
    in :meth:`close` if unshared), so the next read reuses it without zero-filling
    fresh memory.
    """

    def __init__(self, pool: BufferPool | None) -> None:
        self._pool = pool
        self._buf: bytearray | None = None
        self._lent = False  # whether the buffer is on loan from the pool
        self.replaced = 0  # buffers left behind because something still held a view

    def take(self, n: int, room: int = 0) -> memoryview:
        """A writable view of ``n`` bytes; every view of the last one must be gone
        (or they keep that buffer, and this is a new one). A new buffer holds
        ``room`` bytes if more than ``n``: the largest part to come."""
        buf = self._buf
        if buf is not None and not unshared(buf):
            self.replaced += 1
            self._drop(reuse=False)
            buf = None
        if buf is None or len(buf) < n:
            self._drop(reuse=True)
            size = max(n, room)
            buf = self._pool.try_take(size) if self._pool is not None else None
            self._lent = buf is not None
            self._buf = buf = buf if buf is not None else bytearray(size)
        return memoryview(buf)[:n]

    def _drop(self, reuse: bool) -> None:
        buf, self._buf = self._buf, None
        if buf is not None and self._lent and self._pool is not None:
            self._pool.give(buf, reuse=reuse)
        self._lent = False

    def close(self) -> None:
        """Done: the buffer goes back to the pool, for reuse only if unshared."""
        buf = self._buf
        self._drop(reuse=buf is not None and unshared(buf))
