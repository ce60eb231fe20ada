"""OrderVerifier and SerialStore: who may do what, once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import msgspec
import pytest

from skymesh.errors import Forbidden
from skymesh.node.orders import PURGE_GRACE, SETTLE_KEEP, OrderVerifier, SerialStore
from skymesh.wire.identity import Identity
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.pieces import new_serial
from skymesh.wire.signing import Signed, decode_header, encode_header, open_signed, sign

COORD = Identity.from_seed(b"c" * 32)
NODE = Identity.from_seed(b"n" * 32)
PIECE = "ab" * 32
NOW = 1_700_000_000.0


def header(
    *,
    signer: Identity = COORD,
    node_id: str = NODE.id,
    piece_id: str = PIECE,
    action: PieceAction = PieceAction.PUT,
    max_bytes: int = 1000,
    expires_at: float = NOW + 60,
    serial: str | None = None,
    coordinator_id: str | None = None,
) -> str:
    order = Order(
        serial=serial or new_serial(),
        coordinator_id=coordinator_id or signer.id,
        node_id=node_id,
        piece_id=piece_id,
        action=action,
        max_bytes=max_bytes,
        expires_at=expires_at,
        issued_at=NOW - 1,
    )
    return encode_header(sign(signer, order))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "orders.sqlite3"


@pytest.fixture
def verifier(db: Path) -> Iterator[OrderVerifier]:
    serials = SerialStore(db)
    yield OrderVerifier(NODE.id, {COORD.public_key}, serials)
    serials.close()


def test_accepts_a_good_order(verifier: OrderVerifier) -> None:
    order = verifier.check(header(max_bytes=77), PIECE, PieceAction.PUT, NOW)
    assert (order.piece_id, order.node_id, order.max_bytes) == (PIECE, NODE.id, 77)


def _tampered() -> str:
    from skymesh.wire.signing import decode_header

    signed = decode_header(header())
    order = msgspec.msgpack.decode(signed.body, type=Order)
    body = msgspec.msgpack.encode(msgspec.structs.replace(order, max_bytes=10**12))
    return encode_header(Signed(body=body, signer=signed.signer, signature=signed.signature))


@pytest.mark.parametrize(
    ("value", "action", "reason"),
    [
        (None, PieceAction.PUT, "missing order"),
        ("", PieceAction.PUT, "missing order"),
        ("!!not base64 msgpack!!", PieceAction.PUT, "malformed"),
        (header(signer=Identity.generate()), PieceAction.PUT, "untrusted"),
        (_tampered(), PieceAction.PUT, "bad signature"),
        (header(coordinator_id="f" * 40), PieceAction.PUT, "not its signer"),
        (header(node_id="e" * 40), PieceAction.PUT, "for node"),
        (header(piece_id="cd" * 32), PieceAction.PUT, "for piece"),
        (header(action=PieceAction.GET), PieceAction.PUT, "allows get, not put"),
        (header(action=PieceAction.PUT), PieceAction.DELETE, "allows put, not delete"),
        (header(expires_at=NOW), PieceAction.PUT, "expired"),
        (header(serial="xyz"), PieceAction.PUT, "malformed serial"),
        (header(max_bytes=-1), PieceAction.PUT, "negative"),
    ],
)
def test_refusals_say_why(
    verifier: OrderVerifier, value: str | None, action: PieceAction, reason: str
) -> None:
    with pytest.raises(Forbidden, match=reason):
        verifier.check(value, PIECE, action, NOW)
    assert verifier.serials.count() == 0  # a refused order spends nothing


def test_trusts_no_one_until_told(db: Path) -> None:
    serials = SerialStore(db)
    try:
        verifier = OrderVerifier(NODE.id, set(), serials)
        value = header()
        with pytest.raises(Forbidden, match="trusts no coordinator"):
            verifier.check(value, PIECE, PieceAction.PUT, NOW)
        verifier.trust(COORD.public_key)
        assert verifier.trusted_keys == {COORD.public_key}
        verifier.check(value, PIECE, PieceAction.PUT, NOW)
    finally:
        serials.close()


@pytest.mark.parametrize("action", [PieceAction.PUT, PieceAction.DELETE])
def test_put_and_delete_serials_are_single_use_across_restarts(
    db: Path, action: PieceAction
) -> None:
    value = header(action=action)
    serials = SerialStore(db)
    verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
    verifier.check(value, PIECE, action, NOW)
    with pytest.raises(Forbidden, match="already used"):
        verifier.check(value, PIECE, action, NOW)
    serials.close()

    serials = SerialStore(db)  # a restarted node
    try:
        verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
        with pytest.raises(Forbidden, match="already used"):
            verifier.check(value, PIECE, action, NOW + 1)
    finally:
        serials.close()


def test_get_orders_are_an_allowance(db: Path) -> None:
    serials = SerialStore(db)
    verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
    value = header(action=PieceAction.GET, max_bytes=100)
    order = verifier.check(value, PIECE, PieceAction.GET, NOW)
    assert verifier.charge(order, 60) == 60
    order = verifier.check(value, PIECE, PieceAction.GET, NOW)  # reusable
    with pytest.raises(Forbidden, match="allowance exhausted: 60 of 100"):
        verifier.charge(order, 41)
    assert verifier.charge(order, 40) == 100
    assert verifier.charge(order, 0) == 100
    serials.close()

    serials = SerialStore(db)
    try:
        verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
        with pytest.raises(Forbidden, match="exhausted"):
            verifier.charge(order, 1)
    finally:
        serials.close()


def test_a_put_order_is_no_allowance(verifier: OrderVerifier) -> None:
    order = verifier.check(header(), PIECE, PieceAction.PUT, NOW)
    with pytest.raises(Forbidden):
        verifier.charge(order, 1)


def test_purge_forgets_long_expired_serials(db: Path) -> None:
    serials = SerialStore(db)
    try:
        assert serials.use("1" * 32, PieceAction.PUT.value, NOW - PURGE_GRACE - 1)
        assert serials.use("2" * 32, PieceAction.PUT.value, NOW - 1)  # within the grace
        assert serials.charge("3" * 32, NOW + 60, 5, 10) == 5
        assert serials.purge(NOW) == 1
        assert serials.count() == 2
        assert not serials.use("2" * 32, PieceAction.PUT.value, NOW - 1)
        assert serials.use("1" * 32, PieceAction.PUT.value, NOW + 60)
    finally:
        serials.close()


def test_served_get_orders_wait_to_be_settled(db: Path) -> None:
    """A get order that served bytes is kept as signed until settled, and its tally
    outlives the purge grace while it waits (it is what the node is paid for)."""
    serials = SerialStore(db)
    try:
        verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
        served = header(action=PieceAction.GET, max_bytes=100, expires_at=NOW + 60)
        idle = header(action=PieceAction.GET, max_bytes=100, expires_at=NOW + 60)
        order = verifier.check(served, PIECE, PieceAction.GET, NOW)
        verifier.charge(order, 30, served)
        verifier.charge(order, 20, served)
        verifier.charge(verifier.check(idle, PIECE, PieceAction.GET, NOW), 0, idle)
        assert serials.unsettled(NOW, 10) == []  # not expired: the tally may still grow
        later = NOW + 60 + PURGE_GRACE + 1
        assert serials.purge(later) == 1  # the idle serial; the served one waits
        assert serials.unsettled(later, 10) == [(order.serial, served, 50)]
        assert serials.purge(NOW + 60 + SETTLE_KEEP + 1) == 1  # never settled: given up
        assert serials.unsettled(NOW + 60 + SETTLE_KEEP + 1, 10) == []
        again = header(action=PieceAction.GET, max_bytes=100, expires_at=NOW + 60)
        verifier.charge(verifier.check(again, PIECE, PieceAction.GET, NOW), 10, again)
        serials.settled([msgspec.msgpack.decode(decode_header(again).body)["serial"]])
        assert serials.unsettled(later, 10) == []
        assert serials.purge(later) == 1  # settled: its tally goes as any serial's
    finally:
        serials.close()


def test_later_charges_of_an_order_take_one_statement(db: Path) -> None:
    """A get order is charged once per window: after the first charge wrote its rows,
    each further one is a single UPDATE, as exact as the full transaction."""
    serials = SerialStore(db)
    try:
        verifier = OrderVerifier(NODE.id, {COORD.public_key}, serials)
        value = header(action=PieceAction.GET, max_bytes=100, expires_at=NOW + 60)
        order = verifier.check(value, PIECE, PieceAction.GET, NOW)
        statements: list[str] = []
        serials._conn.set_trace_callback(statements.append)
        assert verifier.charge(order, 60, value) == 60
        assert len(statements) == 5  # BEGIN, two inserts, the update, COMMIT
        statements.clear()
        assert verifier.charge(order, 30, value) == 90
        assert len(statements) == 1
        with pytest.raises(Forbidden, match="90 of 100 bytes served, 11 more"):
            verifier.charge(order, 11, value)
        # the rows gone behind the remembered serial (a purge after a clock step):
        # the full transaction writes them again
        other = sqlite3.connect(db)
        other.execute("DELETE FROM serials")
        other.execute("DELETE FROM unsettled")
        other.commit()
        other.close()
        assert verifier.charge(order, 10, value) == 10
        assert serials.unsettled(NOW + 60, 10) == [(order.serial, value, 10)]
    finally:
        serials.close()


def test_check_is_fast_enough(verifier: OrderVerifier) -> None:
    values = [header() for _ in range(200)]
    start = time.perf_counter()
    for v in values:
        verifier.check(v, PIECE, PieceAction.PUT, NOW)
    per_order = (time.perf_counter() - start) / len(values)
    assert per_order < 0.005  # signature check + one SQLite insert: well under 5 ms


def test_get_order_verified_once_but_checked_every_time(
    verifier: OrderVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader shows one get order per window: its signature is verified once, while
    piece, action and expiry are still checked on every request."""
    import skymesh.node.orders as orders_mod

    calls = 0

    def counting(
        signed: Signed,
        kind: type[Order],
        trusted: Collection[bytes] | Callable[[bytes], bool] | None = None,
    ) -> Order:
        nonlocal calls
        calls += 1
        return open_signed(signed, kind, trusted)

    monkeypatch.setattr(orders_mod, "open_signed", counting)
    h = header(action=PieceAction.GET, expires_at=NOW + 10)
    for _ in range(3):
        assert verifier.check(h, PIECE, PieceAction.GET, NOW).action is PieceAction.GET
    assert calls == 1
    with pytest.raises(Forbidden, match="for piece"):
        verifier.check(h, "cd" * 32, PieceAction.GET, NOW)
    with pytest.raises(Forbidden, match="allows get"):
        verifier.check(h, PIECE, PieceAction.PUT, NOW)
    with pytest.raises(Forbidden, match="expired"):
        verifier.check(h, PIECE, PieceAction.GET, NOW + 11)
    # a put order is single-use and never remembered
    p = header(action=PieceAction.PUT)
    verifier.check(p, PIECE, PieceAction.PUT, NOW)
    with pytest.raises(Forbidden, match="already used"):
        verifier.check(p, PIECE, PieceAction.PUT, NOW)
    # a forged copy of a remembered order is a different header: verified, refused
    forged = header(action=PieceAction.GET, signer=Identity.from_seed(b"x" * 32))
    with pytest.raises(Forbidden, match="untrusted"):
        verifier.check(forged, PIECE, PieceAction.GET, NOW)
