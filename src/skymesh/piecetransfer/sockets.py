"""Sockets for a reader's connections to nodes: a receive buffer that holds a node's answer.

A reader takes each node's answer to a ranged read as it streams and stops
reading the connection while it decodes (``client/download.py``). With the
kernel's autotuned receive buffer (128 KiB to start) the node's TCP window then
closes, and every window update the reader's next ``recv`` sends has the kernel
transmit the node's queued bytes inside that ``recv``: on loopback the reader's
process pays for the node's sending. A fixed buffer of ``RCVBUF`` (the kernel
doubles it) lets a node send a whole boto3 range (8 MiB over 6 data pieces, 1.4
MB each) at once; the bytes wait in the kernel's socket buffer, not in the
reader's memory. The gateway's GET CPU per GB fell by ~0.3 s (docs/benchmarks.md,
"Streaming reader").

A fixed buffer turns the kernel's autotuning off for that socket, so it is set
only where ``net.core.rmem_max`` allows all of it (a lower cap would leave a
buffer smaller than autotuning gives): one connection then moves up to ~80 MB/s
over a 100 ms round trip.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

from aiohttp.connector import AddrInfoType

RCVBUF = 4 * 1024 * 1024
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


@functools.cache
def _rcvbuf() -> int | None:
    """``RCVBUF`` where the kernel allows that much, else None (keep autotuning)."""
    try:
        cap = int(RMEM_MAX.read_text())
    except (OSError, ValueError):
        return None
    return RCVBUF if cap >= RCVBUF else None


def piece_socket(addr_info: AddrInfoType) -> socket.socket:
    """A socket for aiohttp's ``TCPConnector(socket_factory=...)`` to reach nodes with."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    size = _rcvbuf()
    if size is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock
