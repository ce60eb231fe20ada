"""One node's answer to a ranged piece read, taken part by part as it streams.

A reader asks a node once for all the piece bytes a range needs, then takes the
answer in parts. A part is the connection's own chunks (views of them, cut where
the part ends), not a copy: the decoder copies each fragment's payload from them
straight into its stripe. What the reader holds for the node is about one part,
however long the range. The connection buffers at most about twice
``read_bufsize`` beyond that before it stops reading the socket; TCP then holds
the node back until the reader takes the next part.
"""

from __future__ import annotations

import aiohttp

from skymesh import errors
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
        read_bufsize: int,
    ):
        self.session = session
        self.piece = piece
        self.root_piece_id = root_piece_id
        self.pos = start  # the first byte the next part starts at
        self.end = end
        self.read_bufsize = read_bufsize
        self._resp: aiohttp.ClientResponse | None = None
        self._skip = 0  # body bytes before ``pos`` still to drop (a node that answered 200)
        self._left: memoryview | None = None  # the rest of a chunk a part did not take

    async def take(self, n: int) -> list[memoryview]:
        """The next ``n`` bytes of the range, as views of the chunks they came in.

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
            parts = await self._gather(self._resp, n)
        except (aiohttp.ClientError, OSError) as e:
            raise errors.Unavailable(
                f"node {self.piece.node_id} at {self.piece.address}: {e}"
            ) from e
        self.pos += n
        if self.pos == self.end:
            self._end_response()
        return parts

    async def _gather(self, resp: aiohttp.ClientResponse, n: int) -> list[memoryview]:
        parts: list[memoryview] = []
        got = 0
        while got < n:
            chunk = self._left
            if chunk is None:
                data, _ = await resp.content.readchunk()
                if not data:
                    raise errors.IntegrityError(
                        f"node {self.piece.node_id} ended its answer"
                        f" {self.end - self.pos - got} bytes short"
                    )
                chunk = memoryview(data)
                if self._skip:
                    drop = min(self._skip, len(chunk))
                    self._skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
            take = min(len(chunk), n - got)
            parts.append(chunk[:take] if take < len(chunk) else chunk)
            self._left = chunk[take:] if take < len(chunk) else None
            got += take
        return parts

    def close(self) -> None:
        """Done with the stream: a finished answer's connection goes back to the pool,
        an unfinished one's is dropped (the node stops sending)."""
        self._end_response()
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
