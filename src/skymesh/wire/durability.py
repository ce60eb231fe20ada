"""The durability protocol: graceful exit, reconciliation (retain) filters, the durability report."""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.metainfo import Scheme, SegmentPosition


class DrainRequest(Base, frozen=True):
    """``POST /v1/nodes/drain`` body, signed by the node: move my pieces off, I am leaving."""

    node_id: str
    timestamp: float


class DrainStatus(Base, frozen=True):
    """Where a node's graceful exit stands; ``drained_at`` is set once it holds no pieces."""

    node_id: str
    requested_at: float
    pieces_left: int
    drained_at: float | None = None


#: The node route that takes a retain filter.
RETAIN_PATH = "/v1/retain"


class RetainOrder(Base, frozen=True):
    """The ``X-Skymesh-Order`` of ``POST /v1/retain``, signed by a coordinator.

    It names the body that follows (``size`` bytes whose BLAKE3-256 is
    ``digest``: the msgpack of a :class:`RetainFilter`), so the node checks who
    sent a filter, that it is for this node and fresh, and that it fits, before
    it reads or allocates a byte of it.
    """

    node_id: str
    created_at: float  # the filter's
    size: int
    digest: bytes


class RetainFilter(Base, frozen=True):
    """The body of ``POST /v1/retain`` on a node, named by a signed :class:`RetainOrder`.

    A Bloom filter (``codec/bloom.py``) of every piece the coordinator references
    on ``node_id``. The node deletes a stored piece only when the filter does not
    contain it and it was stored before ``stored_before`` (``created_at`` minus the
    coordinator's grace), so pieces of uploads still in flight survive.
    """

    node_id: str
    created_at: float
    stored_before: float
    piece_count: int  # members, for logs and sizing checks
    num_bits: int
    hashes: int
    seed: bytes
    bits: bytes


class RetainReport(Base, frozen=True):
    """What a node did with one filter."""

    created_at: float  # the filter's
    finished_at: float
    checked: int  # pieces looked at
    removed: int
    removed_bytes: int
    kept_young: int  # not in the filter but stored after stored_before


class RetainResponse(Base, frozen=True):
    """A node's answer to ``POST /v1/retain`` (202): queued; the last sweep's report."""

    queued: bool
    last: RetainReport | None = None


class SchemeHealth(Base, frozen=True):
    """Committed segments of one redundancy scheme, by count of healthy pieces."""

    scheme: Scheme
    segments: int
    histogram: dict[int, int]  # healthy pieces -> segments
    at_or_below_repair: int  # what the repair checker queues
    lost: int  # fewer than k healthy pieces


class SegmentHealth(Base, frozen=True):
    bucket: str
    key: str
    position: SegmentPosition
    healthy: int
    stored: int
    scheme: Scheme


class DurabilityReport(Base, frozen=True):
    """``GET /v1/admin/durability`` (admin token)."""

    generated_at: float
    nodes: int
    healthy_nodes: int
    segments: int  # committed segments with pieces (inline ones cannot be lost)
    inline_segments: int
    schemes: list[SchemeHealth]
    at_risk: list[SegmentHealth]  # at or below repair, worst first (capped)
    lost: list[SegmentHealth]  # below k (capped)
    lost_total: int = 0
    at_risk_total: int = 0


class PieceHolder(Base, frozen=True):
    """One stored piece of a segment: its number and the node holding it.

    ``state`` is the durability rule's verdict (``coordinator/durability/health.py``):
    ``healthy`` (counted, and in place), ``misplaced`` (counted, but repair moves it: its
    node is leaving, outside the bucket's residency, or its region holds too many) or
    ``lost`` (not counted: the node is offline, disqualified, revoked or unknown).
    """

    piece_num: int
    node_id: str
    state: str


class SegmentPieces(Base, frozen=True):
    """One segment of an object stored in pieces, and where each piece is."""

    position: SegmentPosition
    scheme: Scheme
    healthy: int  # pieces counted towards durability (healthy and misplaced)
    pieces: list[PieceHolder]  # by piece number


class ObjectPieces(Base, frozen=True):
    """``GET /v1/admin/objects/pieces?bucket=&key=`` (admin token): where the latest
    version of an object is stored. Names, sizes and node ids only: no content, no keys."""

    bucket: str
    key: str
    size: int
    created_at: float
    inline_segments: int  # segments kept in the metadata itself (no pieces to show)
    segments: list[SegmentPieces]
