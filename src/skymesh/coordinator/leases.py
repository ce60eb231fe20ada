"""The lease book: which coordinator of several runs each background loop, kept in the database.

Several coordinators may share one database; each background loop (audit, repair,
gc, ...) must run on exactly one of them at a time. A lease is a row of
``loop_leases``: the loop's name, its holder, when the holder took it and until when
it holds it. A coordinator takes a lease that is free (released), expired, or its
own (a renewal), in one conditional upsert in one write transaction, so two
coordinators can never both take the same lease: SQLite runs one writer at a time,
and PostgreSQL's ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` locks the row and
checks the condition against its newest version.

The holder is one coordinator *process*: its identity's node id plus a random
suffix drawn at each start (:func:`holder_id`). A coordinator restarted with the
same identity therefore never takes its previous life's leases for its own; they
expire (at most ``lease_ttl`` later) or were released by a clean stop. The other
choice, the bare node id, would take them back at once after a crash, but two
processes started on one identity (a copied data directory) would then both believe
they hold every lease.

Times are the coordinator's clock (unix seconds): one coordinator writes
``expires_at`` by its clock and another compares it with its own, so coordinator
clocks must agree within a few seconds (NTP); see ``lease_keeper.py`` for the margin.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import loop_leases

#: ``holder`` of a released lease: free for anyone.
FREE = ""


def holder_id(node_id: str) -> str:
    """This coordinator process's name as a lease holder: ``<node id>/<random suffix>``."""
    return f"{node_id}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Lease:
    """One loop's lease as the database has it."""

    name: str
    holder: str  # FREE once released
    acquired_at: float
    expires_at: float

    def held_at(self, now: float) -> bool:
        """Whether someone holds it at ``now``."""
        return self.holder != FREE and self.expires_at > now


class LeaseBook:
    """Takes, renews and releases leases for one holder; lists everyone's."""

    def __init__(self, db: Database, holder: str, ttl: float, clock: Callable[[], float]) -> None:
        if ttl <= 0:
            raise ValueError("a lease's ttl must be positive")
        self.db = db
        self.holder = holder
        self.ttl = ttl
        self.clock = clock

    async def acquire(self, names: Sequence[str]) -> list[Lease]:
        """Take or renew each of ``names`` that is free, expired or ours; then each one's, by name.

        A lease held is ours when its ``holder`` is :attr:`holder`; it then expires
        ``ttl`` seconds after this transaction, by the clock. A renewal keeps the
        first ``acquired_at``.
        """
        if not names:
            return []
        holder, ttl, clock = self.holder, self.ttl, self.clock

        def txn(conn: sa.Connection) -> list[Lease]:
            now = clock()
            rows = [
                {"name": n, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
                for n in names
            ]
            conn.execute(_take_or_renew(conn.dialect.name, rows))
            t = loop_leases.c
            return _select(conn, sa.select(loop_leases).where(t.name.in_(names)).order_by(t.name))

        return await self.db.write(txn)

    async def release(self, names: Sequence[str]) -> None:
        """Free those of ``names`` that are ours, so another coordinator takes them at once."""
        if not names:
            return
        holder, clock = self.holder, self.clock
        t = loop_leases.c

        def txn(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(loop_leases)
                .where(t.name.in_(names), t.holder == holder)
                .values(holder=FREE, expires_at=clock())
            )

        await self.db.write(txn)

    async def list(self) -> list[Lease]:
        """Every lease ever taken, by loop name."""
        return await self.db.read(
            lambda conn: _select(conn, sa.select(loop_leases).order_by(loop_leases.c.name))
        )


def _take_or_renew(dialect: str, rows: list[dict[str, object]]) -> sa.Insert:
    """One upsert of ``rows`` (all one holder's): a new name is inserted; an existing one
    is overwritten only where it is free, expired, or already this holder's.

    SQLite and PostgreSQL both take this form (SQLite from 3.24); no other backend is
    supported."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(loop_leases).values(rows)
    t, new = loop_leases.c, stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[t.name],
        set_={
            "holder": new.holder,
            "acquired_at": sa.case((t.holder == new.holder, t.acquired_at), else_=new.acquired_at),
            "expires_at": new.expires_at,
        },
        where=sa.or_(t.holder == new.holder, t.holder == FREE, t.expires_at <= new.acquired_at),
    )


def _select(conn: sa.Connection, query: sa.Select[Any]) -> list[Lease]:
    return [
        Lease(name=r.name, holder=r.holder, acquired_at=r.acquired_at, expires_at=r.expires_at)
        for r in conn.execute(query).all()
    ]
