"""Is a piece healthy? One rule, used by repair, audits and durability reports.

A piece counts towards its segment's durability when its node is registered,
online, and not disqualified. Pieces on a node that is exiting gracefully stay
healthy (they are still there and readable) until repair has moved them; they
are *misplaced* (:func:`needs_move`), which is what makes repair move them
before the node leaves, so a drain never lowers a segment's health.
"""

from __future__ import annotations

from skymesh.config import CoordinatorConfig
from skymesh.coordinator.model import NodeRecord
from skymesh.coordinator.reputation import Reputation

DEFAULT_OFFLINE_AFTER = CoordinatorConfig().offline_after


def healthy(
    node: NodeRecord | None,
    reputation: Reputation | None,
    now: float,
    *,
    offline_after: float = DEFAULT_OFFLINE_AFTER,
) -> bool:
    """True when a piece on ``node`` can be counted on (pass the registry's ``offline_after``).

    ``reputation`` None means the node has no audit history yet: judged on being online.
    """
    if node is None or not node.is_online(now, offline_after):
        return False
    return reputation is None or not (reputation.disqualified or reputation.exited)


def needs_move(reputation: Reputation | None) -> bool:
    """The piece is readable but should live elsewhere: its node is leaving."""
    return reputation is not None and reputation.exiting
