"""The node's piece protocol: orders that allow an action on a piece, receipts, hashes, audits.

A piece transfer carries a coordinator-signed :class:`Order` in the ``X-Skymesh-Order``
header (``skymesh.wire.signing.ORDER_HEADER``) to one of the piece paths below; a
stored piece is answered with a :class:`PieceReceipt` signed by the node.
``docs/spec/node-protocol.md`` is the prose form.
"""

from __future__ import annotations

import enum

from skymesh.wire.base import Base

#: The node's piece routes, in aiohttp's ``{name}`` form: the node mounts them as they
#: are and callers fill them in with ``.format(piece_id=...)``.
PIECE_PATH = "/v1/pieces/{piece_id}"  # PUT, GET, HEAD, DELETE
PIECE_HASHES_PATH = PIECE_PATH + "/hashes"  # GET
PIECE_AUDIT_PATH = PIECE_PATH + "/audit"  # GET ?chunk=N


class PieceAction(enum.Enum):
    PUT = "put"
    GET = "get"
    DELETE = "delete"
    AUDIT = "audit"


class Order(Base, frozen=True):
    """Permission, signed by a coordinator, for one action on one piece at one node.

    A ``put`` or ``delete`` order is single-use. A ``get`` order is an allowance of
    ``max_bytes`` over any number of ranged reads until it expires.
    """

    serial: str  # 32 hex chars, unique per order
    coordinator_id: str
    node_id: str
    piece_id: str
    action: PieceAction
    max_bytes: int
    expires_at: float
    issued_at: float
    # Accounting (docs/operations.md "Accounting and payouts"): the project a client
    # read is charged to, and why the piece moves ("" a client, "repair" a repairer).
    # Settled ``get`` orders are the basis of egress pay; old orders lack both.
    project_id: str = ""
    purpose: str = ""


class PieceReceipt(Base, frozen=True):
    """What a node signs once it has durably stored a piece."""

    node_id: str
    piece_id: str
    serial: str
    size: int
    merkle_root: bytes
    stored_at: float


class PieceHashes(Base, frozen=True):
    """Leaf hashes of a piece's Merkle tree, for readers that verify a range."""

    piece_id: str
    size: int
    chunk_size: int
    leaves: list[bytes]


class AuditChunk(Base, frozen=True):
    """``GET /v1/pieces/{id}/audit?chunk=N``: one Merkle chunk and its inclusion proof.

    The auditor checks ``leaf_hash(data)`` with ``proof`` against the root it
    recorded from the piece's receipt; the node cannot answer without the bytes.
    """

    piece_id: str
    chunk_index: int
    leaf_count: int
    data: bytes
    proof: list[bytes]
