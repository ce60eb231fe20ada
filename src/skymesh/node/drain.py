"""The node side of a graceful exit: ask the coordinator to move this node's pieces off.

The request is signed with the node's own identity key (see
``coordinator/repair/drain.py`` for why not the admin token), so ``skymesh node
drain`` runs where the node's ``data_dir`` is, with the node's config.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from skymesh.config import NodeConfig
from skymesh.errors import ConfigError
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.durability import DrainRequest, DrainStatus
from skymesh.wire.identity import Identity
from skymesh.wire.signing import sign

IDENTITY_FILE = "identity.key"


async def request_drain(
    config: NodeConfig,
    *,
    wait: bool = False,
    poll: float = 5.0,
    timeout: float = 24 * 3600.0,
    progress: Callable[[DrainStatus], None] | None = None,
) -> DrainStatus:
    """Ask to leave (idempotent: asking again reports progress); with ``wait``, until drained."""
    key_file = Path(config.data_dir) / IDENTITY_FILE
    if not key_file.exists():
        raise ConfigError(
            f"no node identity at {key_file}: run this with the node's --config (its data_dir)"
        )
    identity = Identity.load(key_file)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30.0)) as session:
        rpc = RpcClient(config.coordinators, session)
        while True:
            signed = sign(identity, DrainRequest(node_id=identity.id, timestamp=time.time()))
            status = await rpc.send(routes.DRAIN, signed)
            if progress is not None:
                progress(status)
            if not wait or status.drained_at is not None or time.monotonic() > deadline:
                return status
            await asyncio.sleep(poll)
