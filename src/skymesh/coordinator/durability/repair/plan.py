"""What repairing one segment means, decided from its pieces alone (pure, table-tested).

Which pieces are kept, misplaced or lost, and whether a segment needs repair, is
the one health rule in ``durability/health.py`` (re-exported here). Repair
rebuilds ``optimal - kept`` pieces, under the lowest piece numbers no kept piece
uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from skymesh.codec import RedundancyScheme
from skymesh.coordinator.durability.health import SegmentHealth, StoredPiece, assess, needs_repair

__all__ = ["SegmentHealth", "StoredPiece", "assess", "needs_repair", "numbers_to_rebuild"]


def numbers_to_rebuild(keep: Sequence[StoredPiece], scheme: RedundancyScheme) -> list[int]:
    """Piece numbers for the ``optimal - len(keep)`` new pieces: the lowest free ones."""
    want = max(0, scheme.optimal - len(keep))
    used = {p.piece_num for p in keep}
    return [n for n in range(scheme.total) if n not in used][:want]
