"""The overlay subsystem: operators, the node registry and node reputation, and their routes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from skymesh.config import CoordinatorConfig
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.overlay.addresses import NodeNetworks
from skymesh.coordinator.overlay.admission import OperatorBook
from skymesh.coordinator.overlay.compute_reputation import ComputeParams, ComputeReputationBook
from skymesh.coordinator.overlay.registry import Registry
from skymesh.coordinator.overlay.reputation import ReputationBook, ReputationParams
from skymesh.loops import DrivenLoop
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    Heartbeat,
    HeartbeatResponse,
    JoinResponse,
    NodeList,
    OperatorAdmission,
    OperatorInfo,
    OperatorList,
)
from skymesh.wire.signing import Signed

EXPIRE_INTERVAL_MAX = 3600.0  # seconds between `expire-nodes` rounds at most


class OverlayService:
    """Who the nodes are and how they stand: admission, joins, heartbeats, scores and exits,
    and ``compute``, the standing of compute nodes' answers in spot checks.

    Chore: ``expire-nodes`` forgets stale unvetted nodes that never stored anything
    (only with ``stale_node_after > 0``). ``on_heartbeat`` is told of every accepted
    heartbeat (the inference subsystem's compute adverts ride on them).
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        db: Database,
        identity: Identity,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.time,
        on_heartbeat: Callable[[str, Heartbeat], Awaitable[None]] | None = None,
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
        self.operators = OperatorBook(db, identity, keyring, clock=clock)
        self.compute = ComputeReputationBook(  # spot checks of inference answers
            db,
            ComputeParams(
                lam=config.compute_lambda,
                exclude_threshold=config.compute_exclude_threshold,
                exclude_operators=config.compute_exclude_operators,
                window=config.compute_check_window,
            ),
            clock=clock,
        )
        self.registry = Registry(
            db,
            identity,
            keyring,
            self.reputation,
            heartbeat_interval=config.heartbeat_interval,
            offline_after=config.offline_after,
            operators=self.operators,
            networks=NodeNetworks(config.node_networks),
            stale_after=config.stale_node_after,
            clock=clock,
            on_heartbeat=on_heartbeat,
        )
        expire_every = min(EXPIRE_INTERVAL_MAX, max(config.stale_node_after / 4, 1.0))
        self.chores = [
            Chore(
                DrivenLoop.periodic("expire-nodes", expire_every, self.registry.expire_stale),
                runs=config.stale_node_after > 0,
            )
        ]

    async def load(self) -> None:
        """Read operators, nodes and their reputations into memory (all reload when stale)."""
        await self.registry.load()
        await self.reputation.load()
        await self.compute.load()

    def add_routes(self, table: RouteTable) -> None:
        """Joins and heartbeats (signed by the node); the node list and operators (admin)."""
        registry = self.registry

        async def join(_call: Call, signed: Signed) -> JoinResponse:
            return await registry.join(signed)

        async def heartbeat(_call: Call, signed: Signed) -> HeartbeatResponse:
            return await registry.heartbeat(signed)

        async def list_nodes(_call: Call, _req: None) -> NodeList:
            return await registry.node_list(await self.compute.refresh())

        async def admit_operator(_call: Call, req: AdmitOperatorRequest) -> OperatorAdmission:
            return await registry.admit_operator(req)

        async def list_operators(_call: Call, _req: None) -> OperatorList:
            return await registry.operator_list()

        async def revoke_operator(call: Call, _req: None) -> OperatorInfo:
            return await registry.revoke_operator(call.request.match_info["operator"])

        table.add(routes.JOIN, join)
        table.add(routes.HEARTBEAT, heartbeat)
        table.add(routes.LIST_NODES, list_nodes)
        table.add(routes.ADMIT_OPERATOR, admit_operator)
        table.add(routes.LIST_OPERATORS, list_operators)
        table.add(routes.REVOKE_OPERATOR, revoke_operator)
