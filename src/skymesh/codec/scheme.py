"""Redundancy schemes: how many pieces a segment becomes and how many bring it back.

Four thresholds, as Storj uses them: ``k`` pieces are needed to read; the checker
repairs once healthy pieces fall to ``repair``; an upload is done once ``optimal``
pieces are stored; it starts towards ``total`` so the slowest nodes can be cut off.
The upper bound of 64 pieces is what liberasurecode accepts (k + m <= 64).
"""

from __future__ import annotations

from dataclasses import dataclass

from skymesh.errors import SchemeError

MAX_PIECES = 64


@dataclass(frozen=True)
class RedundancyScheme:
    k: int
    repair: int
    optimal: int
    total: int

    def __post_init__(self) -> None:
        for name in ("k", "repair", "optimal", "total"):
            value = getattr(self, name)
            # bool is an int; True/False as a threshold is always a bug upstream.
            if not isinstance(value, int) or isinstance(value, bool):
                raise SchemeError(f"scheme {name} must be an integer, got {value!r}")
        if not 1 <= self.k <= self.repair <= self.optimal <= self.total <= MAX_PIECES:
            raise SchemeError(
                f"invalid scheme {self}: need 1 <= k <= repair <= optimal <= total <= {MAX_PIECES}"
            )
        if self.total <= self.k:
            raise SchemeError(f"invalid scheme {self}: need at least one parity piece (total > k)")

    @property
    def parity(self) -> int:
        return self.total - self.k

    @property
    def expansion(self) -> float:
        """Bytes stored per byte of ciphertext once an upload settles at ``optimal``."""
        return self.optimal / self.k

    def __str__(self) -> str:
        return f"{self.k}/{self.repair}/{self.optimal}/{self.total}"

    @classmethod
    def parse(cls, text: str) -> RedundancyScheme:
        if not isinstance(text, str):
            raise SchemeError(f"scheme must be text like '8/10/12/14', got {text!r}")
        parts = text.strip().split("/")
        # isdecimal() alone admits non-ASCII digits that int() would quietly accept.
        if len(parts) != 4 or not all(p.isascii() and p.isdecimal() for p in parts):
            raise SchemeError(f"scheme must look like 'k/repair/optimal/total', got {text!r}")
        k, repair, optimal, total = (int(p) for p in parts)
        return cls(k, repair, optimal, total)


DEFAULT_SCHEME = RedundancyScheme(8, 10, 12, 14)


def scheme_for_network(node_count: int) -> RedundancyScheme:
    """The scheme a network of ``node_count`` nodes can hold, one piece per node.

    Below the default's 14 nodes there is no long tail to cut, so ``optimal ==
    total``; but ``total`` stays below the node count (about one spare node in
    six, at least one) so that repair has somewhere to put a rebuilt piece: a
    scheme that uses every node can never be repaired after a loss. Only at two
    nodes is there no room for a spare (a scheme needs at least one parity piece,
    and two nodes). k keeps roughly the default's 1.5x expansion while leaving at
    least one parity piece, and repair sits halfway between k and optimal.

    With three or more evenly filled regions, ``total - k = ceil(total / 3)`` is
    what round-robin placement puts in the fullest region, so losing any one
    region still leaves ``k`` pieces.
    """
    if node_count >= DEFAULT_SCHEME.total:
        return DEFAULT_SCHEME
    if node_count < 2:
        raise SchemeError("need at least 2 nodes")
    total = max(2, node_count - max(1, node_count // 6))
    k = min(max(1, (2 * total) // 3), total - 1)  # floor(total / 1.5) in exact integers
    return RedundancyScheme(k, k + (total - k) // 2, total, total)
