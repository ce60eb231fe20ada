"""What repairing one segment means, decided from its pieces alone (pure, table-tested).

Every stored piece is one of:

- **healthy and in place**: kept as it is;
- **healthy but misplaced**: on an exiting node, or one piece too many in a
  region (losing that region would leave fewer than ``k``); still readable, so it
  can be a source, but it is replaced and dropped;
- **lost**: unknown, offline or disqualified node; dropped.

A segment needs repair when its healthy pieces are at or under ``repair``, or when
anything is misplaced. Repair rebuilds ``optimal - kept`` pieces, under the lowest
piece numbers no kept piece uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from skymesh.codec import RedundancyScheme
from skymesh.coordinator.health import healthy, needs_move
from skymesh.coordinator.model import NodeRecord
from skymesh.coordinator.reputation import Reputation


@dataclass(frozen=True)
class StoredPiece:
    piece_num: int
    node_id: str
    merkle_root: bytes


@dataclass(frozen=True)
class SegmentHealth:
    healthy: list[StoredPiece] = field(default_factory=list)  # readable (misplaced included)
    keep: list[StoredPiece] = field(default_factory=list)  # healthy and in place
    misplaced: list[StoredPiece] = field(default_factory=list)
    lost: list[StoredPiece] = field(default_factory=list)

    @property
    def healthy_count(self) -> int:
        return len(self.healthy)


def assess(
    stored: Sequence[StoredPiece],
    scheme: RedundancyScheme,
    nodes: Mapping[str, NodeRecord],
    reputations: Mapping[str, Reputation],
    now: float,
    *,
    offline_after: float,
    region_spread: bool = True,
) -> SegmentHealth:
    """Sort a segment's pieces into kept, misplaced and lost.

    ``region_spread`` asks for the region rule (the caller turns it off when the
    network has fewer than three regions, where no placement could satisfy it).
    """
    out = SegmentHealth()
    for p in stored:
        node = nodes.get(p.node_id)
        rep = reputations.get(p.node_id)
        if not healthy(node, rep, now, offline_after=offline_after):
            out.lost.append(p)
        elif needs_move(rep):
            out.healthy.append(p)
            out.misplaced.append(p)
        else:
            out.healthy.append(p)
            out.keep.append(p)
    if region_spread:
        # After repair the segment holds `optimal` pieces; a region may keep at most
        # optimal - k of them, so that losing it leaves k.
        limit = max(scheme.optimal - scheme.k, 1)
        per_region: Counter[str] = Counter()
        crowded: list[StoredPiece] = []
        for p in sorted(out.keep, key=lambda p: p.piece_num):
            region = nodes[p.node_id].region
            per_region[region] += 1
            if per_region[region] > limit:
                crowded.append(p)
        if crowded:
            out.keep[:] = [p for p in out.keep if p not in crowded]
            out.misplaced.extend(crowded)
    return out


def needs_repair(health: SegmentHealth, scheme: RedundancyScheme) -> bool:
    return health.healthy_count <= scheme.repair or bool(health.misplaced)


def numbers_to_rebuild(keep: Sequence[StoredPiece], scheme: RedundancyScheme) -> list[int]:
    """Piece numbers for the ``optimal - len(keep)`` new pieces: the lowest free ones."""
    want = max(0, scheme.optimal - len(keep))
    used = {p.piece_num for p in keep}
    return [n for n in range(scheme.total) if n not in used][:want]
