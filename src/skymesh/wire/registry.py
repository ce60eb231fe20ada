"""The registry protocol: node identity, admission, joining, heartbeats and the node list.

Nodes sign :class:`NodeInfo` and :class:`Heartbeat` (``skymesh.wire.signing``);
the coordinator answers who it is and how often to beat. A node joins with a
join token: a :class:`JoinToken` its operator was given by the network's
administrator, signed by the coordinator, as text (:func:`encode_join_token`).
"""

from __future__ import annotations

import base64

import msgspec

from skymesh.errors import Forbidden
from skymesh.wire.base import Base
from skymesh.wire.inference import ComputeAdvert
from skymesh.wire.signing import Signed

#: What every join token starts with (the version of its format).
JOIN_TOKEN_PREFIX = "smj1_"
MAX_JOIN_TOKEN = 4096  # characters


class JoinToken(Base, frozen=True):
    """An operator's admission, signed by the coordinator: who may join, where, until when.

    Only the operator's latest token (``token_id``) admits new nodes; a node once
    admitted keeps working after it expires, until its operator is revoked.
    """

    token_id: str
    operator: str
    regions: list[str]
    compute: bool
    issued_at: float
    expires_at: float


def encode_join_token(signed: Signed) -> str:
    """A signed :class:`JoinToken` as text safe in a shell, a URL or a TOML string."""
    raw = msgspec.msgpack.encode(signed)
    return JOIN_TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_join_token(text: str) -> Signed:
    """The envelope of a join token (not yet verified); :class:`Forbidden` when malformed."""
    text = text.strip()
    if not text.startswith(JOIN_TOKEN_PREFIX) or len(text) > MAX_JOIN_TOKEN:
        raise Forbidden(
            f"malformed join token: it must start with {JOIN_TOKEN_PREFIX!r}"
            f" and be at most {MAX_JOIN_TOKEN} characters",
            code="JoinTokenInvalid",
        )
    body = text[len(JOIN_TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return msgspec.msgpack.decode(raw, type=Signed)
    except (ValueError, msgspec.DecodeError, RecursionError) as e:  # nested too deep
        raise Forbidden(f"malformed join token: {e}", code="JoinTokenInvalid") from e


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
    # The operator's join token (``JOIN_TOKEN_PREFIX``...): required to register a new
    # node; the node's operator and allowed regions come from it, never from
    # ``operator`` above, which the coordinator ignores.
    join_token: str = ""
    # energy profile (NodeConfig): PUE (>= 1), grid gCO2/kWh, watts per TB stored.
    # Defaults, for nodes older than these fields: NodeConfig's.
    pue: float = 1.2
    grid_gco2_kwh: float = 300.0
    storage_watts_per_tb: float = 2.0


class JoinResponse(Base, frozen=True):
    coordinator_id: str
    coordinator_public_key: bytes
    heartbeat_interval: float
    # Signed[CoordinatorKeys] (``wire.keys``): the network's current coordinator keys,
    # signed by the answering coordinator; None from coordinators older than it
    keys: Signed | None = None


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
    keys: Signed | None = None  # Signed[CoordinatorKeys], as in JoinResponse


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
    # its operator is admitted, not revoked, and allows its region; False: it gets no
    # pieces, its pieces count as lost, it is neither audited nor routed to
    admitted: bool = True
    # spot checks of its inference answers (docs/inference.md): compute score, checks
    # counted, and whether it is excluded from compute routing
    compute_score: float = 1.0
    spot_checks: int = 0
    compute_excluded: bool = False
    version: str = ""  # the skymesh version it last joined with
    # its unknown-audit score fell below the suspension threshold: no new pieces until
    # it answers audits again (docs/durability.md)
    suspended: bool = False
    # its declared energy profile (docs/operations.md "Energy")
    pue: float = 1.2
    grid_gco2_kwh: float = 300.0
    storage_watts_per_tb: float = 2.0


class NodeList(Base, frozen=True):
    nodes: list[NodeStatus]


# ---------------------------------------------------------------- operators (admin)


class AdmitOperatorRequest(Base, frozen=True):
    """``POST /v1/admin/operators``: admit an operator, or issue it a new token.

    Admitting an admitted operator again replaces its regions and compute flag and
    issues a new token; its earlier tokens admit no new node from then on.
    """

    name: str
    regions: list[str]
    compute: bool = False
    expires_in: float = 30 * 24 * 3600.0  # seconds the token admits new nodes


class OperatorInfo(Base, frozen=True):
    """One admitted (or revoked) operator, as ``GET /v1/admin/operators`` lists it."""

    name: str
    regions: list[str]
    compute: bool
    created_at: float
    token_issued_at: float
    token_expires_at: float
    revoked_at: float | None = None
    nodes: int = 0  # registered nodes of this operator


class OperatorAdmission(Base, frozen=True):
    """The answer to an admission: the operator and its join token (shown once)."""

    operator: OperatorInfo
    join_token: str


class OperatorList(Base, frozen=True):
    operators: list[OperatorInfo]
