"""Orders: who may do what to which piece on this node.

A node acts on a piece only when shown an :class:`~skymesh.wire.node.Order`
signed by a coordinator key it trusts now (``node/trust.py``: the network's current
keys, which change as coordinators are added and retired) whose id the order names,
for this node, this piece and this action,
not expired. ``put`` and ``delete`` orders are single-use: the serial is spent
when the order is accepted, before any body is read, so a failed upload needs a
new order. ``get`` orders are an allowance of ``max_bytes`` over any number of
reads until they expire.

Spent serials and bytes served per ``get`` serial live in SQLite (WAL) in the
node's data directory, each with its order's expiry, so a restart cannot replay
an order; rows are purged some time after their order expires. A ``get`` order
that served bytes is also kept as signed (``unsettled``) until the node settles
it with the coordinator (``node/settlement.py``): the basis of its egress pay. Statements run
on the event loop: each is one small transaction that writes the WAL without
fsync (``synchronous=NORMAL``: durable across a process crash, not a power loss).
"""

from __future__ import annotations

import collections
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from skymesh.errors import Forbidden
from skymesh.private import make_dirs
from skymesh.wire.identity import id_from_public_key
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.signing import ORDER_HEADER, decode_header, open_signed

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PURGE_GRACE = 3600.0  # keep rows this long past expiry, in case the clock steps back
PURGE_BATCH = 5000
SETTLE_KEEP = 7 * 86_400.0  # unsettled orders are dropped this long past expiry
VERIFIED_CACHE = 4096  # get orders remembered as verified (a few hundred bytes each)
RECORDED_CACHE = 4096  # get serials remembered as having their rows written
_HEX = frozenset("0123456789abcdef")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS serials (
    serial TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    expires_at REAL NOT NULL,
    served_bytes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS serials_by_expiry ON serials (expires_at);
CREATE TABLE IF NOT EXISTS unsettled (
    serial TEXT PRIMARY KEY,
    order_header TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unsettled_by_expiry ON unsettled (expires_at);
"""


_ADD_SERVED = (
    "UPDATE serials SET served_bytes = served_bytes + ?"
    " WHERE serial = ? AND action = 'get' AND served_bytes + ? <= ?"
    " RETURNING served_bytes"
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SerialStore:
    """Spent order serials and bytes served per ``get`` serial, persisted in SQLite.

    Piece orders (put, delete, audit) and inference, batch and read orders share it,
    each serial tagged with its kind: a restart forgets no spent serial of any kind.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        make_dirs(self.path.parent)
        self._conn = _connect(self.path)
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(
                f"{self.path} has schema version {version}, expected {SCHEMA_VERSION}"
            )
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # get serials whose serials and unsettled rows this process has written: a
        # reader charges one order once per window, and those charges need one UPDATE
        self._recorded: collections.OrderedDict[str, None] = collections.OrderedDict()

    def close(self) -> None:
        self._conn.close()

    def use(self, serial: str, kind: str, expires_at: float) -> bool:
        """Spend ``serial`` (``kind``: a piece action's value, or ``inference``,
        ``batch``, ``read``); False when it was spent before."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO serials (serial, action, expires_at) VALUES (?, ?, ?)",
            (serial, kind, expires_at),
        )
        return cur.rowcount == 1

    def spent(self, serial: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM serials WHERE serial = ?", (serial,)).fetchone()
        return row is not None

    def charge(
        self, serial: str, expires_at: float, nbytes: int, limit: int, order_header: str = ""
    ) -> int | None:
        """Add ``nbytes`` to what ``serial`` has served; the new total, or None (and no
        change) when it would pass ``limit`` or the serial is not a ``get`` serial.

        ``order_header``: the signed order, kept for settlement when given.
        """
        conn = self._conn
        if order_header and serial in self._recorded:
            # Both rows exist already (this process wrote them): one statement, one
            # implicit transaction, instead of five. No row back means refused, or
            # the rows were purged meanwhile: the full path below answers either.
            row = conn.execute(_ADD_SERVED, (nbytes, serial, nbytes, limit)).fetchone()
            if row is not None:
                self._recorded.move_to_end(serial)
                return int(row[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO serials (serial, action, expires_at, served_bytes)"
                " VALUES (?, 'get', ?, 0)",
                (serial, expires_at),
            )
            if order_header:
                conn.execute(
                    "INSERT OR IGNORE INTO unsettled (serial, order_header, expires_at)"
                    " VALUES (?, ?, ?)",
                    (serial, order_header, expires_at),
                )
            row = conn.execute(_ADD_SERVED, (nbytes, serial, nbytes, limit)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if order_header:
            self._recorded[serial] = None
            if len(self._recorded) > RECORDED_CACHE:
                self._recorded.popitem(last=False)
        return None if row is None else int(row[0])

    def served(self, serial: str) -> int:
        row = self._conn.execute(
            "SELECT served_bytes FROM serials WHERE serial = ?", (serial,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def unsettled(self, now: float, limit: int) -> list[tuple[str, str, int]]:
        """Up to ``limit`` expired orders to settle: (serial, signed order, bytes served)."""
        rows = self._conn.execute(
            "SELECT u.serial, u.order_header, coalesce(s.served_bytes, 0)"
            " FROM unsettled u LEFT JOIN serials s ON s.serial = u.serial"
            " WHERE u.expires_at <= ? ORDER BY u.expires_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def settled(self, serials: Iterable[str]) -> None:
        """Forget orders the coordinator answered for (counted, duplicate or refused)."""
        serials = list(serials)
        for s in serials:
            self._recorded.pop(s, None)
        self._conn.executemany("DELETE FROM unsettled WHERE serial = ?", [(s,) for s in serials])

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM serials").fetchone()[0])

    def purge(self, now: float) -> int:
        """Forget serials whose orders expired over ``PURGE_GRACE`` ago (and settled),
        and unsettled orders ``SETTLE_KEEP`` past expiry.

        Blocking; meant for a thread (it uses its own connection, in batches, so
        the event loop's statements wait at most one batch).
        """
        removed = 0
        conn = _connect(self.path)
        try:
            conn.execute("DELETE FROM unsettled WHERE expires_at < ?", (now - SETTLE_KEEP,))
            while True:
                cur = conn.execute(
                    "DELETE FROM serials WHERE serial IN"
                    " (SELECT serial FROM serials WHERE expires_at < ?"
                    " AND serial NOT IN (SELECT serial FROM unsettled) LIMIT ?)",
                    (now - PURGE_GRACE, PURGE_BATCH),
                )
                removed += cur.rowcount
                if cur.rowcount < PURGE_BATCH:
                    break
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
        return removed


class OrderVerifier:
    """Checks the order on a piece request; charges ``get`` allowances."""

    def __init__(self, node_id: str, trusted_keys: Iterable[bytes], serials: SerialStore):
        self.node_id = node_id
        self._trusted: set[bytes] = set(trusted_keys)
        self.serials = serials
        # get orders whose signature already checked out, by header value: a reader
        # shows the same order once per window of a segment, and an Ed25519 verify
        # costs more than serving a small window
        self._verified: collections.OrderedDict[str, Order] = collections.OrderedDict()
        self.accepted: collections.Counter[str] = collections.Counter()  # by action, for metrics

    @property
    def trusted_keys(self) -> frozenset[bytes]:
        return frozenset(self._trusted)

    def trust(self, public_key: bytes) -> None:
        """Honour orders signed by ``public_key`` from now on."""
        if len(public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._trusted.add(public_key)

    def replace_trusted(self, public_keys: frozenset[bytes]) -> None:
        """Honour orders signed by exactly ``public_keys`` from now on (never none).

        Forgets the get orders already verified: one signed by a key no longer trusted
        must not keep serving from the cache.
        """
        if not public_keys or any(len(k) != 32 for k in public_keys):
            raise ValueError("trust at least one key, each a 32-byte Ed25519 public key")
        self._trusted = set(public_keys)
        self._verified.clear()

    def check(
        self, header_value: str | None, piece_id: str, action: PieceAction, now: float
    ) -> Order:
        """The order in ``header_value`` if it allows ``action`` on ``piece_id`` now.

        Spends the serial of a ``put`` or ``delete`` order. Raises
        :class:`Forbidden` saying exactly why an order is refused.
        """
        if not header_value:
            raise Forbidden(f"missing order: send a signed order in the {ORDER_HEADER} header")
        order = self._verified.get(header_value)
        if order is None:
            order = self._verify(header_value)
        else:
            self._verified.move_to_end(header_value)
        if order.node_id != self.node_id:
            raise Forbidden(f"order is for node {order.node_id}, not this node ({self.node_id})")
        if order.piece_id != piece_id:
            raise Forbidden(f"order is for piece {order.piece_id}, not {piece_id}")
        if order.action is not action:
            raise Forbidden(f"order allows {order.action.value}, not {action.value}")
        if now >= order.expires_at:
            raise Forbidden(f"order expired {now - order.expires_at:.1f} s ago")
        if len(order.serial) != 32 or not _HEX.issuperset(order.serial):
            raise Forbidden("order has a malformed serial")
        if order.max_bytes < 0:
            raise Forbidden("order has a negative max_bytes")
        if action is not PieceAction.GET and not self.serials.use(
            order.serial, action.value, order.expires_at
        ):
            raise Forbidden(f"order serial {order.serial} was already used")
        self.accepted[action.value] += 1
        return order

    def _verify(self, header_value: str) -> Order:
        """Decode and verify a signed order (remembered when it is a ``get`` order)."""
        signed = decode_header(header_value)
        if not self._trusted:
            raise Forbidden("order signed by an untrusted key: this node trusts no coordinator yet")
        order = open_signed(signed, Order, self._trusted)
        if order.coordinator_id != id_from_public_key(signed.signer):
            raise Forbidden(f"order names coordinator {order.coordinator_id}, not its signer")
        if order.action is PieceAction.GET:  # put and delete orders are single-use anyway
            self._verified[header_value] = order
            if len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return order

    def charge(self, order: Order, nbytes: int, header_value: str = "") -> int:
        """Count ``nbytes`` served under a ``get`` order; Forbidden past its ``max_bytes``.

        Returns the bytes served under the order so far, these included.
        ``header_value``: the signed order as received, kept to settle it later.
        """
        if order.action is not PieceAction.GET:
            raise Forbidden(f"a {order.action.value} order does not allow reads")
        total = self.serials.charge(
            order.serial, order.expires_at, nbytes, order.max_bytes, header_value if nbytes else ""
        )
        if total is None:
            served = self.serials.served(order.serial)
            raise Forbidden(
                f"order allowance exhausted: {served} of {order.max_bytes} bytes served, "
                f"{nbytes} more asked"
            )
        return total
