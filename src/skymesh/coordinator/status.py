"""``GET /v1/admin/status``: what this coordinator knows of the network, in one answer.

Gathered from what the subsystems already keep, nothing counted twice: the
coordinator keys (``keyring``), the node list (``overlay``, each node's state by
:func:`~skymesh.coordinator.metrics.node_state`), the durability tally
(``durability/report.py``'s :class:`Tally`: the last report, made again in the
background once older than ``TALLY_MAX_AGE``, so the route never waits for a walk
of every segment but the first, and then at most ``TALLY_WAIT``), the repair queue (read
live), the loop leases with this coordinator's runs and failures (``lease_keeper``),
the compute nodes a gateway would be given (``inference/compute.py``) and this
process's recent warnings (``events.py``). The grouping, :func:`group_nodes`, is pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import msgspec

import skymesh
from skymesh.coordinator.durability.report import repair_queue_tally
from skymesh.coordinator.durability.service import DurabilityService
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.events import RecentEvents
from skymesh.coordinator.inference.service import InferenceService
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.lease_keeper import LeaseKeeper
from skymesh.coordinator.metrics import NODE_STATES, node_state
from skymesh.coordinator.overlay.service import OverlayService
from skymesh.wire import routes
from skymesh.wire.registry import NodeStatus
from skymesh.wire.status import NetworkStatus, NodeGroup

STATUS_LIST_CAP = 10  # segments named in each of the tally's at_risk and lost lists

#: States whose nodes' capacity counts: they answer and hold pieces.
SERVING = frozenset({"online", "unvetted", "suspended"})


def group_nodes(nodes: Iterable[NodeStatus]) -> list[NodeGroup]:
    """Nodes by (region, operator), counted by state, with capacity and versions (pure)."""
    groups: dict[tuple[str, str], list[NodeStatus]] = {}
    for n in nodes:
        groups.setdefault((n.region, n.operator), []).append(n)
    out = []
    for (region, operator), members in sorted(groups.items()):
        states = dict.fromkeys(NODE_STATES, 0)
        versions: dict[str, int] = {}
        capacity = used = 0
        for n in members:
            state = node_state(n)
            states[state] += 1
            if state in SERVING:
                capacity += n.capacity_bytes
                used += n.used_bytes
            versions[n.version] = versions.get(n.version, 0) + 1
        out.append(
            NodeGroup(
                region=region,
                operator=operator,
                states={s: c for s, c in states.items() if c},
                capacity_bytes=capacity,
                used_bytes=used,
                versions=dict(sorted(versions.items())),
            )
        )
    return out


class StatusReport:
    """Builds :class:`NetworkStatus` from the coordinator's parts."""

    def __init__(
        self,
        coordinator_id: str,
        keyring: Keyring,
        overlay: OverlayService,
        durability: DurabilityService,
        inference: InferenceService,
        leases: LeaseKeeper,
        events: RecentEvents,
    ) -> None:
        self.coordinator_id = coordinator_id
        self.keyring = keyring
        self.overlay = overlay
        self.durability = durability
        self.inference = inference
        self.leases = leases
        self.events = events

    async def build(self) -> NetworkStatus:
        d = self.durability
        keys, nodes, tally, queue, leases, compute = await asyncio.gather(
            self.keyring.list(),
            self.overlay.registry.node_list(),
            d.tally.latest(),
            repair_queue_tally(d.m.db),
            self.leases.report(),
            self.inference.compute.nodes(),
        )
        return NetworkStatus(
            generated_at=d.m.clock(),
            coordinator_id=self.coordinator_id,
            version=skymesh.__version__,
            coordinators=keys.keys,
            nodes=group_nodes(nodes.nodes),
            durability=None
            if tally is None
            else msgspec.structs.replace(
                tally, at_risk=tally.at_risk[:STATUS_LIST_CAP], lost=tally.lost[:STATUS_LIST_CAP]
            ),
            repair_queue=queue,
            leases=leases,
            compute=compute.nodes,
            events=self.events.events(),
        )

    def add_routes(self, table: RouteTable) -> None:
        async def status(_call: Call, _req: None) -> NetworkStatus:
            return await self.build()

        table.add(routes.STATUS, status)
