"""The one receipt check: every mismatch refused, with the error the coordinator answers."""

from __future__ import annotations

from typing import Any

import pytest

from skymesh.errors import BadRequest, Forbidden, IntegrityError, SkymeshError
from skymesh.piecetransfer.receipts import check_receipt, sign_receipt
from skymesh.wire.identity import Identity
from skymesh.wire.node import PieceReceipt
from skymesh.wire.pieces import derive_piece_id, new_root_piece_id
from skymesh.wire.signing import Signed, sign

NODE = Identity.generate()
OTHER = Identity.generate()
ROOT = new_root_piece_id()
PIECE = derive_piece_id(ROOT, 2)
SIZE = 4096
MERKLE = b"m" * 32


def receipt(signer: Identity = NODE, **fields: Any) -> Signed:
    values: dict[str, Any] = {
        "node_id": NODE.id,
        "piece_id": PIECE,
        "serial": "0" * 32,
        "size": SIZE,
        "merkle_root": MERKLE,
        "stored_at": 1.0,
    }
    values.update(fields)
    return sign(signer, PieceReceipt(**values))


def check(signed: Signed, **known: Any) -> PieceReceipt:
    args: dict[str, Any] = {"node_id": NODE.id, "piece_id": PIECE, "size": SIZE}
    args.update(known)
    return check_receipt(signed, **args)


def test_a_node_signs_receipts_in_its_own_name() -> None:
    signed = sign_receipt(
        NODE, piece_id=PIECE, serial="1" * 32, size=SIZE, merkle_root=MERKLE, stored_at=2.0
    )
    got = check(signed, node_key=NODE.public_key, merkle_root=MERKLE)
    assert (got.node_id, got.piece_id, got.serial, got.size) == (NODE.id, PIECE, "1" * 32, SIZE)
    assert signed.signer == NODE.public_key


def test_a_receipt_matching_everything_known_passes() -> None:
    assert check(receipt()).merkle_root == MERKLE  # what an uploader without the registry knows
    assert check(receipt(), node_key=NODE.public_key).size == SIZE  # the coordinator
    assert check(receipt(), node_key=NODE.public_key, merkle_root=MERKLE).piece_id == PIECE


def _bad_signature() -> Signed:
    good = receipt()
    return Signed(body=good.body, signer=good.signer, signature=bytes(64))


@pytest.mark.parametrize(
    ("signed", "known", "error"),
    [
        pytest.param(_bad_signature(), {}, Forbidden, id="bad signature"),
        pytest.param(receipt(signer=OTHER), {}, Forbidden, id="signed by another key"),
        pytest.param(
            receipt(), {"node_key": OTHER.public_key}, Forbidden, id="not the registered key"
        ),
        pytest.param(
            receipt(signer=OTHER, node_id=OTHER.id), {}, Forbidden, id="another node's receipt"
        ),
        pytest.param(receipt(node_id=OTHER.id), {}, Forbidden, id="names another node"),
        pytest.param(receipt(piece_id=derive_piece_id(ROOT, 3)), {}, Forbidden, id="another piece"),
        pytest.param(receipt(size=SIZE - 1), {}, BadRequest, id="another size"),
        pytest.param(
            receipt(merkle_root=b"x" * 32), {"merkle_root": MERKLE}, IntegrityError, id="root"
        ),
    ],
)
def test_each_mismatch_is_refused(
    signed: Signed, known: dict[str, object], error: type[SkymeshError]
) -> None:
    with pytest.raises(error) as e:
        check(signed, **known)
    assert type(e.value) is error
    assert e.value.status == {Forbidden: 403, BadRequest: 400, IntegrityError: 502}[error]


def test_the_root_is_checked_only_where_the_caller_knows_it() -> None:
    # the coordinator never saw the bytes: it records the receipt's root as it is
    assert check(receipt(merkle_root=b"x" * 32), node_key=NODE.public_key).merkle_root == b"x" * 32


def test_the_first_failure_wins_in_the_documented_order() -> None:
    # another node named and the wrong size: who signed for what comes first
    with pytest.raises(Forbidden):
        check(receipt(node_id=OTHER.id, size=1))
    with pytest.raises(BadRequest):
        check(receipt(size=1, merkle_root=b"x" * 32), merkle_root=MERKLE)
