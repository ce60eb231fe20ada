"""What RpcClient says when a peer does not answer: the reason, never an empty one."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from skymesh import errors
from skymesh.rpc import RpcClient


async def test_a_silent_peer_is_reported_as_a_timeout() -> None:
    # A listening socket that never accepts: the connection opens, no answer ever comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(errors.Unavailable) as caught:
                await RpcClient(url, session).call("/x", None, dict)
    # (a POST not declared safe to repeat: it may have arrived)
    assert str(caught.value) == f"{url} unreachable: no answer in time; it may have been done"


async def test_a_refused_connection_keeps_its_own_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.Unavailable) as caught:
            await RpcClient(f"http://127.0.0.1:{port}", session).call("/x", None, dict)
    assert "unreachable: Cannot connect" in str(caught.value)
