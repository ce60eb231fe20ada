"""The registry protocol: node identity, joining, heartbeats and the node list.

Nodes sign :class:`NodeInfo` and :class:`Heartbeat` (``skymesh.wire.signing``);
the coordinator answers who it is and how often to beat.
"""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.inference import ComputeAdvert


class PeerIdentity(Base, frozen=True):
    """``GET /v1/identity`` on a coordinator or a node."""

    id: str
    public_key: bytes
    role: str
    version: str = ""


class NodeInfo(Base, frozen=True):
    """What a node says of itself when it joins (signed by the node)."""

    node_id: str
    address: str  # base URL where the node serves pieces, e.g. http://127.0.0.1:7801
    region: str
    operator: str
    capacity_bytes: int
    used_bytes: int
    version: str
    timestamp: float


class JoinResponse(Base, frozen=True):
    coordinator_id: str
    coordinator_public_key: bytes
    heartbeat_interval: float


class Heartbeat(Base, frozen=True):
    """``POST /v1/nodes/heartbeat`` body (signed by the node)."""

    node_id: str
    address: str
    capacity_bytes: int
    used_bytes: int
    timestamp: float
    compute: ComputeAdvert | None = None


class HeartbeatResponse(Base, frozen=True):
    heartbeat_interval: float
    known: bool = True  # False: the coordinator forgot us, join again


class NodeStatus(Base, frozen=True):
    """One row of ``GET /v1/nodes``."""

    node_id: str
    address: str
    region: str
    operator: str
    capacity_bytes: int
    used_bytes: int
    online: bool
    last_seen: float
    joined_at: float

    audit_score: float = 1.0
    unknown_score: float = 1.0
    audits: int = 0  # answered audits (successes + failures)
    vetted: bool = False
    disqualified: bool = False
    exit: str = ""  # "", "draining" or "drained"


class NodeList(Base, frozen=True):
    nodes: list[NodeStatus]
