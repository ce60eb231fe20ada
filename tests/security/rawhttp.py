"""HTTP/1.1 requests on their own sockets, with bodies sent as a test says.

For what no client library does on purpose: declare a length and send less,
stall mid-body, hang up mid-body, or send a chunked body with no length. Each
answer must come within a deadline, so a server that waits where it should
refuse fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

ANSWER_WITHIN = 5.0  # seconds


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes


class RawRequest:
    """One request on its own connection: headers at :meth:`open`, the body as the test sends it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, base_url: str, method: str, path: str, headers: dict[str, str]
    ) -> RawRequest:
        """Connect to ``base_url`` and send the request line and ``headers`` (a Host is added
        unless given)."""
        url = urlsplit(base_url)
        assert url.hostname is not None and url.port is not None
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        names = {k.lower() for k in headers}
        lines = [f"{method} {path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {url.netloc}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body (empty: the last)."""
        await self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def answer(self, timeout: float = ANSWER_WITHIN) -> Answer:
        """The answer, which must come within ``timeout`` seconds (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            status = int((await self.reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await self.reader.readexactly(length) if length else b""
        return Answer(status, headers, body)

    async def close(self) -> None:
        """Hang up (mid-body, where the body is not all sent)."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
