"""Segment buffers kept for the next upload instead of allocated afresh.

A new ``bytearray`` of a part's size (8 MiB from boto3) is zero-filled under the
GIL and then faulted in page by page as the body is copied into it, on every part
of a large upload. Buffers come back only once the upload that used them
succeeded (a failed one may leave a worker thread still reading its buffer), and
the pool keeps at most ``max_bytes`` so an idle gateway does not hold a PUT's
worth of memory.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MIN_POOLED = 256 * 1024  # smaller buffers cost less to make than to keep track of


class BufferPool:
    """Free bytearrays by exact size, oldest dropped first when over budget."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._free: OrderedDict[int, list[bytearray]] = OrderedDict()
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes; its contents are whatever was left in it."""
        stack = self._free.get(size) if size >= MIN_POOLED else None
        if stack:
            buf = stack.pop()
            if not stack:
                del self._free[size]
            self._held -= size
            return buf
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        size = len(buf)
        if size < MIN_POOLED or size > self.max_bytes:
            return
        while self._held + size > self.max_bytes and self._free:
            old_size, stack = next(iter(self._free.items()))
            stack.pop(0)
            self._held -= old_size
            if not stack:
                del self._free[old_size]
        self._free.setdefault(size, []).append(buf)
        self._free.move_to_end(size)
        self._held += size
