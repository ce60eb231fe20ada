"""A table's rows in memory, by node id, for the hot reads of placement and routing.

Writers write the database first, then :meth:`RowCache.put`; :meth:`RowCache.refresh`
reloads the whole table once the copy is older than ``ttl``, which is how several
coordinators over one database see each other's writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database

T = TypeVar("T")


class RowCache(Generic[T]):
    """Rows of ``table`` as ``make(row)``, keyed by their ``node_id``.

    ``columns`` (default: the table's) are what a row holds, in that order: a ``make``
    that takes them positionally costs far less than ``row._asdict()`` at 10,000 rows.
    """

    def __init__(
        self,
        db: Database,
        table: sa.Table,
        make: Callable[[Any], T],
        ttl: float,
        columns: Sequence[sa.ColumnElement[Any]] | None = None,
    ) -> None:
        self.db = db
        self.table = table
        self.select = sa.select(*columns) if columns is not None else sa.select(table)
        self.make = make
        self.ttl = ttl
        self.rows: dict[str, T] = {}
        self._loaded_at = -float("inf")
        # changes with every load, put and drop: what is derived from the rows is
        # current while the version it was derived at is
        self.version = 0

    async def load(self) -> None:
        select, make = self.select, self.make
        rows = await self.db.read(lambda conn: conn.execute(select).all())
        self.rows = {r.node_id: make(r) for r in rows}
        self._loaded_at = time.monotonic()
        self.version += 1

    async def refresh(self) -> dict[str, T]:
        """Every row (reloaded first when the copy is older than ``ttl``)."""
        if time.monotonic() - self._loaded_at > self.ttl:
            await self.load()
        return self.rows

    def put(self, node_id: str, value: T) -> None:
        self.rows[node_id] = value
        self.version += 1

    def drop(self, node_id: str) -> None:
        if self.rows.pop(node_id, None) is not None:
            self.version += 1
