"""One node's answer to a ranged piece read, taken part by part as it streams.

A reader asks a node once for all the piece bytes a range needs, then takes the
answer in parts, each into the same buffer of the stream's own: what it holds for
the node is one part, however long the range. The connection buffers at most about
twice ``read_bufsize`` beyond that before it stops reading the socket; TCP then
holds the node back until the reader takes the next part. The buffer comes from
the client's :class:`~skymesh.client.buffers.BufferPool` where its budget has room
(and goes back to it), so the next range reuses it instead of zero-filling a new one.
"""

from __future__ import annotations

import aiohttp

from skymesh import errors
from skymesh.client.buffers import BufferPool
from skymesh.piecetransfer.exchange import open_piece_range
from skymesh.wire.metainfo import DownloadPiece


class PieceStream:
    """Bytes [start, end) of one piece, from one request, in parts asked for in order."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        piece: DownloadPiece,
        root_piece_id: str,
        start: int,
        end: int,
        capacity: int,
        read_bufsize: int,
        pool: BufferPool | None = None,
    ):
        self.session = session
        self.piece = piece
        self.root_piece_id = root_piece_id
        self.pos = start  # the first byte the next part starts at
        self.end = end
        self.capacity = capacity  # the largest part the caller will ask for: the buffer's size
        self.read_bufsize = read_bufsize
        self._resp: aiohttp.ClientResponse | None = None
        self._skip = 0  # body bytes before ``pos`` still to drop (a node that answered 200)
        self._left: memoryview | None = None  # the rest of a chunk a part did not take
        self._buf: bytearray | None = None
        self._pool = pool
        self._lent = False  # whether the buffer is on loan from the pool

    async def take(self, n: int) -> memoryview:
        """The next ``n`` bytes of the range, in the stream's buffer: valid until the next take.

        The request goes out with the first take. Raises
        :class:`~skymesh.errors.Unavailable` when the node cannot be reached or the
        connection breaks, :class:`~skymesh.errors.IntegrityError` when its answer
        ends short, and the node's own error when it refuses.
        """
        if not 0 < n <= self.end - self.pos:
            raise ValueError(f"{n} bytes asked with {self.end - self.pos} left")
        try:
            if self._resp is None:
                self._resp, self._skip = await open_piece_range(
                    self.session,
                    self.piece,
                    self.root_piece_id,
                    self.pos,
                    self.end,
                    self.read_bufsize,
                )
            buf = self._buf
            if buf is None or len(buf) < n:
                self._give_back()
                buf = self._buf = self._borrow(max(n, self.capacity))
            view = memoryview(buf)[:n]
            await self._fill(self._resp, view)
        except (aiohttp.ClientError, OSError) as e:
            raise errors.Unavailable(
                f"node {self.piece.node_id} at {self.piece.address}: {e}"
            ) from e
        self.pos += n
        if self.pos == self.end:
            self._end_response()  # the view stays valid: the buffer goes back in close()
        return view

    async def _fill(self, resp: aiohttp.ClientResponse, view: memoryview) -> None:
        n = len(view)
        pos = 0
        while pos < n:
            chunk = self._left
            if chunk is None:
                data, _ = await resp.content.readchunk()
                if not data:
                    raise errors.IntegrityError(
                        f"node {self.piece.node_id} ended its answer"
                        f" {self.end - self.pos - pos} bytes short"
                    )
                chunk = memoryview(data)
                if self._skip:
                    drop = min(self._skip, len(chunk))
                    self._skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
            take = min(len(chunk), n - pos)
            view[pos : pos + take] = chunk[:take]
            self._left = chunk[take:] if take < len(chunk) else None
            pos += take

    def _borrow(self, size: int) -> bytearray:
        buf = self._pool.try_take(size) if self._pool is not None else None
        self._lent = buf is not None
        return buf if buf is not None else bytearray(size)

    def _give_back(self) -> None:
        # Only the loop writes a stream's buffer, and only in take: a decode that a
        # cancelled read left running in a thread may still read it, never write it.
        buf, self._buf = self._buf, None
        if buf is not None and self._lent and self._pool is not None:
            self._pool.give(buf)
        self._lent = False

    def close(self) -> None:
        """Done with the stream: a finished answer's connection goes back to the pool,
        an unfinished one's is dropped (the node stops sending); the buffer goes back
        to its pool, so views of it from the last take must not be used after this."""
        self._end_response()
        self._give_back()
        self.pos = self.end  # a closed stream has nothing more to give

    def _end_response(self) -> None:
        resp, self._resp = self._resp, None
        self._left = None
        if resp is None:
            return
        if self.pos == self.end and resp.status == 206:
            resp.release()
        else:
            resp.close()
