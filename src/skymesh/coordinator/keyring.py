"""The network's coordinator keys: who may sign what nodes and coordinators accept.

Several coordinators, each with its own Ed25519 identity, share one database. Each
registers its public key in ``coordinator_keys`` when it opens (:func:`register_key`)
and refuses to start once its key was retired. The keys not retired are the
network's *current* keys, and everything a coordinator signs and later gets back
(join tokens, batch and inference orders shown as evidence or usage) is checked
against that set, so what coordinator A issued works at coordinator B.

Nodes learn the set from a :class:`~skymesh.wire.keys.CoordinatorKeys` statement
that rides on every join and heartbeat answer (:meth:`Keyring.statement`), signed by
the answering coordinator. Its ``version`` counts rows plus retired rows: rows are
never deleted and a retirement is never undone, so every change raises it by one,
with no counter to keep and no clock to trust.

The :class:`Keyring` keeps the rows in memory and reloads them when the copy is
older than ``ttl`` (and, at most once a ``MISS_RELOAD_INTERVAL``, when a signer is
not in it: a coordinator that started a moment ago), which is how replicas see
each other's keys and retirements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec
import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import coordinator_keys
from skymesh.errors import ConfigError, Conflict, NotFound
from skymesh.wire.identity import Identity
from skymesh.wire.keys import (
    CoordinatorKey,
    CoordinatorKeyInfo,
    CoordinatorKeyList,
    CoordinatorKeys,
)
from skymesh.wire.signing import Signed, open_signed, sign

log = logging.getLogger(__name__)

T = TypeVar("T", bound=msgspec.Struct)

CACHE_TTL = 2.0  # seconds the in-memory copy serves before a reload
MISS_RELOAD_INTERVAL = 1.0  # an unknown signer reloads the copy at most this often


@dataclass(frozen=True)
class KeyRecord:
    """One ``coordinator_keys`` row."""

    coordinator_id: str
    public_key: bytes
    url: str
    added_at: float
    retired_at: float | None

    @property
    def current(self) -> bool:
        return self.retired_at is None

    def info(self) -> CoordinatorKeyInfo:
        return CoordinatorKeyInfo(
            coordinator_id=self.coordinator_id,
            public_key=self.public_key,
            url=self.url,
            added_at=self.added_at,
            retired_at=self.retired_at,
        )


def _record(row: sa.Row) -> KeyRecord:
    return KeyRecord(
        coordinator_id=row.coordinator_id,
        public_key=bytes(row.public_key),
        url=row.url,
        added_at=row.added_at,
        retired_at=row.retired_at,
    )


def _read_all(conn: sa.Connection) -> list[KeyRecord]:
    return [_record(r) for r in conn.execute(sa.select(coordinator_keys))]


def version_of(records: list[KeyRecord]) -> int:
    """The key set's version: rows plus retired rows (each change adds one)."""
    return len(records) + sum(1 for r in records if not r.current)


async def register_key(db: Database, identity: Identity, url: str, now: float) -> None:
    """Record this coordinator's key (or its new URL); :class:`ConfigError` once retired."""
    where = coordinator_keys.c.coordinator_id == identity.id

    def txn(conn: sa.Connection) -> float | None:
        row = conn.execute(sa.select(coordinator_keys).where(where)).one_or_none()
        if row is None:
            conn.execute(
                coordinator_keys.insert().values(
                    coordinator_id=identity.id,
                    public_key=identity.public_key,
                    url=url,
                    added_at=now,
                    retired_at=None,
                )
            )
            return None
        if row.retired_at is None and url and row.url != url:
            conn.execute(coordinator_keys.update().where(where).values(url=url))
        return row.retired_at  # type: ignore[no-any-return]

    retired_at = await db.write(txn)
    if retired_at is not None:
        raise ConfigError(
            f"this coordinator's key (coordinator {identity.id}) was retired at"
            f" {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(retired_at))}: nodes no"
            " longer honour what it signs. Start it with a new identity: move its"
            " identity.key out of its data_dir (a new one is made at start), and it joins"
            " the network's keys as a new coordinator"
        )


class Keyring:
    """The current coordinator keys, the signed statement of them, and retirement."""

    def __init__(
        self,
        db: Database,
        identity: Identity,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = CACHE_TTL,
    ) -> None:
        self.db = db
        self.identity = identity
        self.clock = clock
        self.ttl = ttl
        self._records: list[KeyRecord] = []
        self._current: frozenset[bytes] = frozenset()
        self._loaded_at = -float("inf")
        self._statement: tuple[tuple[int, tuple[CoordinatorKey, ...]], Signed] | None = None
        self._warned_retired = False

    # ------------------------------------------------------------ reads

    def _take(self, records: list[KeyRecord]) -> None:
        self._records = sorted(records, key=lambda r: (r.added_at, r.coordinator_id))
        self._current = frozenset(r.public_key for r in self._records if r.current)
        self._loaded_at = time.monotonic()
        if self.identity.public_key not in self._current and not self._warned_retired:
            self._warned_retired = True
            log.error(
                "this coordinator's key (coordinator %s) is retired: nodes refuse what it"
                " signs from their next key statement on; stop it, and start it again with"
                " a new identity.key",
                self.identity.id,
            )

    async def load(self) -> None:
        self._take(await self.db.read(_read_all))

    async def refresh(self) -> list[KeyRecord]:
        """Every row (reloaded first when the copy is older than ``ttl``)."""
        if time.monotonic() - self._loaded_at > self.ttl:
            await self.load()
        return self._records

    async def trusted(self, signer: bytes | None = None) -> frozenset[bytes]:
        """The current public keys; when ``signer`` is not among them, reloaded first (at
        most once a ``MISS_RELOAD_INTERVAL``: it may be a coordinator that just started)."""
        await self.refresh()
        age = time.monotonic() - self._loaded_at
        if signer is not None and signer not in self._current and age > MISS_RELOAD_INTERVAL:
            await self.load()
        return self._current

    async def open(self, signed: Signed, kind: type[T]) -> T:
        """``signed`` as ``kind`` if a current coordinator key signed it (else Forbidden)."""
        return open_signed(signed, kind, await self.trusted(signed.signer))

    async def statement(self) -> Signed:
        """The current keys as a ``Signed[CoordinatorKeys]`` of this coordinator.

        Signed again only when the set (or a URL) changed: a heartbeat answer reuses it.
        """
        records = await self.refresh()
        keys = tuple(
            CoordinatorKey(coordinator_id=r.coordinator_id, public_key=r.public_key, url=r.url)
            for r in records
            if r.current
        )
        state = (version_of(records), keys)
        if self._statement is None or self._statement[0] != state:
            body = CoordinatorKeys(keys=list(keys), version=state[0], issued_at=self.clock())
            self._statement = (state, sign(self.identity, body))
        return self._statement[1]

    async def list(self) -> CoordinatorKeyList:
        """Every key, current ones first (oldest first), and the set's version."""
        await self.load()
        rows = sorted(self._records, key=lambda r: r.retired_at is not None)
        return CoordinatorKeyList(keys=[r.info() for r in rows], version=version_of(self._records))

    # ------------------------------------------------------------ writes

    async def retire(self, coordinator_id: str) -> CoordinatorKeyInfo:
        """Retire a coordinator's key for good (again: unchanged).

        Refused for the last current key: nodes would be left trusting nobody.
        """
        now = self.clock()
        where = coordinator_keys.c.coordinator_id == coordinator_id

        def txn(conn: sa.Connection) -> list[KeyRecord]:
            records = _read_all(conn)
            mine = next((r for r in records if r.coordinator_id == coordinator_id), None)
            if mine is None:
                raise NotFound(
                    f"no coordinator key {coordinator_id!r}", code="NoSuchCoordinatorKey"
                )
            if mine.current:
                if sum(1 for r in records if r.current) == 1:
                    raise Conflict(
                        f"coordinator {coordinator_id} holds the network's last current key:"
                        " start another coordinator (a new identity) first, and retire this"
                        " one once nodes have heard of the new key",
                        code="LastCoordinatorKey",
                    )
                conn.execute(coordinator_keys.update().where(where).values(retired_at=now))
            return _read_all(conn)

        records = await self.db.write(txn)
        self._take(records)
        retired = next(r for r in records if r.coordinator_id == coordinator_id)
        log.warning(
            "coordinator key %s retired: nodes stop honouring what it signs after their"
            " next key statement",
            coordinator_id,
        )
        return retired.info()
