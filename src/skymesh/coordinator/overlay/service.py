"""The overlay subsystem: the node registry and node reputation, and the routes nodes call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from skymesh.config import CoordinatorConfig
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.overlay.registry import Registry
from skymesh.coordinator.overlay.reputation import ReputationBook, ReputationParams
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.registry import Heartbeat, HeartbeatResponse, JoinResponse, NodeList
from skymesh.wire.signing import Signed


class OverlayService:
    """Who the nodes are and how they stand: joins, heartbeats, audit scores and exits.

    ``on_heartbeat`` is told of every accepted heartbeat (the inference subsystem's
    compute adverts ride on them).
    """

    chores: Sequence[Chore] = ()

    def __init__(
        self,
        config: CoordinatorConfig,
        db: Database,
        identity: Identity,
        *,
        clock: Callable[[], float] = time.time,
        on_heartbeat: Callable[[str, Heartbeat], None] | None = None,
    ) -> None:
        self.reputation = ReputationBook(
            db,
            ReputationParams(
                audit_lambda=config.audit_lambda,
                audit_dq_threshold=config.audit_dq_threshold,
                unknown_lambda=config.unknown_lambda,
                unknown_suspend_threshold=config.unknown_suspend_threshold,
                vetting_audits=config.vetting_audits,
            ),
            clock=clock,
        )
        self.registry = Registry(
            db,
            identity,
            self.reputation,
            heartbeat_interval=config.heartbeat_interval,
            offline_after=config.offline_after,
            clock=clock,
            on_heartbeat=on_heartbeat,
        )

    async def load(self) -> None:
        """Read the nodes and their reputation into memory (both reload when stale)."""
        await self.registry.load()
        await self.reputation.load()

    def add_routes(self, table: RouteTable) -> None:
        """Joins and heartbeats (signed by the node), and the node list (admin)."""
        registry = self.registry

        async def join(_call: Call, signed: Signed) -> JoinResponse:
            return await registry.join(signed)

        async def heartbeat(_call: Call, signed: Signed) -> HeartbeatResponse:
            return await registry.heartbeat(signed)

        async def list_nodes(_call: Call, _req: None) -> NodeList:
            return await registry.node_list()

        table.add(routes.JOIN, join)
        table.add(routes.HEARTBEAT, heartbeat)
        table.add(routes.LIST_NODES, list_nodes)
