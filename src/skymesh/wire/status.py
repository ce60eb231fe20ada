"""The network at a glance: ``GET /v1/admin/status`` (admin), what ``skymesh status`` shows.

One coordinator answers with what it knows: the coordinator keys (every coordinator
the network has had, with the URL each last served at), its nodes grouped by region
and operator, the durability tally, the repair queue, the background loops' leases
and results, the compute nodes' adverts and its own recent warnings. Gateways are not
known to coordinators: the CLI probes those it is told of itself.
"""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.durability import DurabilityReport
from skymesh.wire.inference import ComputeNode
from skymesh.wire.keys import CoordinatorKeyInfo
from skymesh.wire.leases import LeaseList


class NodeGroup(Base, frozen=True):
    """The nodes of one operator in one region, counted by state (each node in one)."""

    region: str
    operator: str
    #: state -> nodes: online, unvetted, suspended, offline, draining (exiting),
    #: exited, disqualified, not_admitted (``coordinator/metrics.py`` ``node_state``)
    states: dict[str, int]
    capacity_bytes: int  # of the nodes counted online, unvetted or suspended
    used_bytes: int
    versions: dict[str, int]  # skymesh version a node last joined with -> nodes


class RepairQueue(Base, frozen=True):
    """The repair queue as the repair checker's last round left it (read live)."""

    queued: int
    below_minimum: int  # queued with fewer than k healthy pieces: lost until nodes return
    histogram: dict[int, int]  # healthy pieces -> queued segments


class RecentEvent(Base, frozen=True):
    """A WARNING or worse the answering coordinator's process logged lately."""

    at: float  # unix seconds
    level: str  # "WARNING", "ERROR", "CRITICAL"
    logger: str
    message: str  # the first line; a traceback's last line is appended


class NetworkStatus(Base, frozen=True):
    """``GET /v1/admin/status``: see the module docstring; ``docs/operations.md`` "Status"."""

    generated_at: float
    coordinator_id: str  # the answering coordinator
    version: str  # its skymesh version
    coordinators: list[CoordinatorKeyInfo]  # every key, current ones first
    nodes: list[NodeGroup]  # by region, then operator
    #: the last durability tally (see docs/spec/coordinator-api.md; its lists trimmed);
    #: None while the coordinator's first one is still being made
    durability: DurabilityReport | None
    repair_queue: RepairQueue
    leases: LeaseList  # every loop's lease, with this coordinator's runs and failures
    compute: list[ComputeNode]  # nodes that may serve inference now, with their adverts
    events: list[RecentEvent]  # newest last
