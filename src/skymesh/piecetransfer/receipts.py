"""Piece receipts: what a node signs once a piece is stored, and the one check of them.

Every party that accepts a receipt (the uploader, the repair worker, the
coordinator at commit) checks it here, each with what it knows: the node it sent
to, the piece id and size always; the node's registered key where it has the
registry; the Merkle root where it sent the bytes itself.
"""

from __future__ import annotations

from skymesh.errors import BadRequest, Forbidden, IntegrityError
from skymesh.wire.identity import Identity
from skymesh.wire.node import PieceReceipt
from skymesh.wire.signing import Signed, open_signed, sign


def sign_receipt(
    identity: Identity,
    *,
    piece_id: str,
    serial: str,
    size: int,
    merkle_root: bytes,
    stored_at: float,
) -> Signed:
    """A node's receipt for a piece it stored durably, naming the node by its own id."""
    receipt = PieceReceipt(
        node_id=identity.id,
        piece_id=piece_id,
        serial=serial,
        size=size,
        merkle_root=merkle_root,
        stored_at=stored_at,
    )
    return sign(identity, receipt)


def check_receipt(
    signed: Signed,
    *,
    node_id: str,
    piece_id: str,
    size: int,
    node_key: bytes | None = None,
    merkle_root: bytes | None = None,
) -> PieceReceipt:
    """The receipt, if node ``node_id`` signed it for exactly ``piece_id`` of ``size`` bytes.

    ``node_key`` (the key the node registered) and ``merkle_root`` (of the bytes
    sent) are checked too when given. Raises :class:`Forbidden` when the receipt
    is not that node's for that piece (a bad signature, another signer, another
    node or piece named), :class:`BadRequest` when the size differs and
    :class:`IntegrityError` when the Merkle root does; the first failure wins, in
    that order. The coordinator answers a segment commit with these errors as
    they are (``docs/spec/coordinator-api.md``, "Segment commits").
    """
    receipt = open_signed(signed, PieceReceipt, trusted=None if node_key is None else [node_key])
    if signed.signer_id != node_id:
        raise Forbidden(
            f"receipt for piece {piece_id} is signed by {signed.signer_id}, not node {node_id}"
        )
    if receipt.node_id != node_id:
        raise Forbidden(f"receipt from node {node_id} names node {receipt.node_id}")
    if receipt.piece_id != piece_id:
        raise Forbidden(
            f"receipt from node {node_id} is for piece {receipt.piece_id}, not {piece_id}"
        )
    if receipt.size != size:
        raise BadRequest(
            f"node {node_id} stored {receipt.size} bytes of piece {piece_id}; it has {size}"
        )
    if merkle_root is not None and receipt.merkle_root != merkle_root:
        raise IntegrityError(
            f"node {node_id} stored other bytes than were sent for piece {piece_id}"
            " (Merkle root mismatch)"
        )
    return receipt
