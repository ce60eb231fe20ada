"""Opening the metadata database, and the two kinds of transaction every operation uses.

Every transaction is a plain function over a SQLAlchemy ``Connection``
(``def txn(conn) -> result``) that :meth:`Database.read` or :meth:`Database.write`
runs as a whole. **A transaction function may run more than once** (see retries
below), so it must be a pure function of the connection: it reads and writes only
through ``conn`` and returns its result. It must not change anything outside (append
to a list it closes over, fill a cache, bump a counter, send a request); do that
with the returned value after ``await db.write(...)``. Logging is fine.

Engines:

- SQLite (the embedded default) runs in-process with the stdlib driver, so each
  transaction runs whole on a small pool of database threads: one hop off the
  event loop per transaction, not one (or three) per statement as through
  SQLAlchemy's asyncio engine over aiosqlite. WAL mode lets readers run beside
  the writer; foreign keys are on; there is a busy timeout for other processes.
  SQLite has one writer at a time: writers queue (``group.GroupCommit``) and
  take the write lock up front (``BEGIN IMMEDIATE``), so a transaction that
  reads then writes never fails half way with "database is locked"; those that
  queued while a write ran commit together, each in a savepoint of its own, with
  one fsync (group commit).
- PostgreSQL (``postgresql://``: psycopg 3, the default, on the same threads;
  ``postgresql+asyncpg://`` through SQLAlchemy's asyncio engine) runs writers
  concurrently, possibly from several coordinators. To keep SQLite's meaning (as if
  writers ran one at a time), writes run at SERIALIZABLE isolation, and reads in a
  REPEATABLE READ READ ONLY snapshot. PostgreSQL aborts a write that would break
  serializability (SQLSTATE 40001) or deadlocks (40P01); :meth:`Database.write` then
  runs the whole function again, up to ``retry.MAX_ATTEMPTS`` times with jittered
  backoff, and raises :class:`~skymesh.errors.Unavailable` when it keeps conflicting.

Each database thread keeps its own two connections (one for reads, one for writes),
so no transaction pays for a pool checkout. A connection found dead (a killed
server, a failover) is dropped and the next transaction on that thread opens a
fresh one. A read that failed on a lost connection is run once more on a fresh
one. A write is run once more only when it failed before COMMIT was sent (it
cannot have committed); a connection lost during COMMIT leaves the outcome unknown
and raises ``Unavailable`` ("metadata database unavailable: ..."), which callers
see as a retryable 503, as they do when the second try fails too.

Migrations (Alembic, in ``migrations/``) run at every start; on an up-to-date
database they do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event

from skymesh.coordinator.db import retry
from skymesh.coordinator.db.group import GroupCommit, Outcome
from skymesh.coordinator.db.url import parse as parse_url
from skymesh.errors import Unavailable
from skymesh.private import make_dirs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DB_FILE = "coordinator.db"
BUSY_TIMEOUT_MS = 10_000
DB_THREADS = 4
_IMMEDIATE = "skymesh_immediate"
_SAVEPOINT = "skymesh_group"  # each function of a group commit runs inside one
#: PostgreSQL advisory lock key that migrations hold (any constant no other user takes)
MIGRATION_LOCK = 0x736B796D657368  # "skymesh"

T = TypeVar("T")
#: A transaction body: runs with an open connection inside BEGIN ... COMMIT.
Txn = Callable[[sa.Connection], T]


def default_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / DB_FILE}"


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",  # a commit the client was told about survives power loss
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config(url: str = "") -> Config:
    """An Alembic config built in code: no alembic.ini needed at run time."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(conn: sa.Connection) -> None:
    """Alembic ``upgrade head`` on an open connection."""
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


class TxnObserver(Protocol):
    """Told of every transaction :class:`Database` runs (the coordinator's metrics)."""

    def transaction(self, kind: str, seconds: float, ok: bool) -> None:
        """A ``read`` or ``write`` ended after ``seconds``, every try and wait included;
        ``ok``: it returned (committed, for a write) rather than raised."""

    def retry(self, kind: str, reason: str) -> None:
        """A try failed and the transaction runs again; ``reason``: ``conflict``
        (serialization failure or deadlock) or ``connection_lost``."""

    def gave_up(self, kind: str) -> None:
        """A write still conflicted after its last try (answered 503)."""


class _Unobserved:
    def transaction(self, kind: str, seconds: float, ok: bool) -> None:
        pass

    def retry(self, kind: str, reason: str) -> None:
        pass

    def gave_up(self, kind: str) -> None:
        pass


class Database:
    """An engine, and :meth:`read` / :meth:`write` to run transactions on it."""

    #: told of each transaction (set by the coordinator to count them)
    observer: TxnObserver = _Unobserved()

    def __init__(self, url: str) -> None:
        parsed = parse_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = parsed.database
            if path and path != ":memory:":
                make_dirs(Path(path).parent)
        self._async: AsyncEngine | None = None
        if parsed.get_dialect().is_async:
            # Imported here: SQLAlchemy's asyncio layer needs greenlet, which only
            # asyncio drivers (asyncpg) bring along.
            from sqlalchemy.ext.asyncio import create_async_engine

            self._async = create_async_engine(parsed, pool_size=2 * DB_THREADS + 1)
            self.engine = self._async.sync_engine
        else:
            connect_args = {"check_same_thread": False} if self.is_sqlite else {}
            self.engine = sa.create_engine(
                parsed, connect_args=connect_args, pool_size=2 * DB_THREADS + 1
            )
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._read_options: dict[str, Any] = {}
            self._write_options: dict[str, Any] = {_IMMEDIATE: True}
        else:
            self._read_options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            self._write_options = {"isolation_level": "SERIALIZABLE"}
        self.url = parsed.render_as_string(hide_password=True)
        # SQLite's writers, one batch at a time (group commit); None: concurrent writers
        self._group = GroupCommit(self._write_batch) if self.is_sqlite else None
        self._threads = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="db")
        # each database thread's (generation, reader, writer), by thread id; only that
        # thread adds or drops its own
        self._held: dict[int, tuple[int, sa.Connection, sa.Connection]] = {}
        # bumped when a connection is found dead: the server restarted or failed over,
        # so every thread's connections opened before are dead too
        self._generation = 0

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        db = cls(url)
        if migrate:
            try:
                await db.migrate()
            except BaseException:
                await db.close()
                raise
        return db

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is there).

        On PostgreSQL, coordinators starting together over one database take turns: each
        migrates under a transaction-scoped advisory lock, at READ COMMITTED so that
        after the wait it reads the revision the one before it left.
        """
        if self.is_sqlite:
            await self.write(upgrade)
        elif self._async is not None:
            async with self._async.begin() as conn:
                await conn.run_sync(_locked_upgrade)
        else:
            await asyncio.get_running_loop().run_in_executor(self._threads, self._migrate_pg)

    def _migrate_pg(self) -> None:
        with self.engine.connect() as conn, conn.begin():
            _locked_upgrade(conn)

    async def read(self, txn: Txn[T]) -> T:
        """Run ``txn`` in a read-only snapshot (rolled back at the end)."""
        started = time.perf_counter()
        ok = False
        try:
            result = await self._read(txn)
            ok = True
            return result
        finally:
            self.observer.transaction("read", time.perf_counter() - started, ok)

    async def write(self, txn: Txn[T]) -> T:
        """Run ``txn`` in a write transaction: committed if it returns, rolled back if it
        raises; run again on a conflict or a connection lost before COMMIT."""
        started = time.perf_counter()
        ok = False
        try:
            result = await self._write(txn)
            ok = True
            return result
        finally:
            self.observer.transaction("write", time.perf_counter() - started, ok)

    async def _read(self, txn: Txn[T]) -> T:
        try:
            return await self._read_once(txn)
        except retry.ConnectionLost:
            self.observer.retry("read", "connection_lost")
        try:
            return await self._read_once(txn)
        except retry.ConnectionLost as e:
            raise _unavailable(e) from e.__cause__

    async def _write(self, txn: Txn[T]) -> T:
        lost = False
        for attempt in range(retry.MAX_ATTEMPTS):
            try:
                return await self._write_once(txn)
            except retry.ConnectionLost as e:
                if lost:
                    raise _unavailable(e) from e.__cause__
                lost = True
                self.observer.retry("write", "connection_lost")
            except sa.exc.DBAPIError as e:
                if not retry.is_conflict(e):
                    raise
                if attempt + 1 == retry.MAX_ATTEMPTS:
                    self.observer.gave_up("write")
                    raise Unavailable(
                        f"metadata database unavailable: still conflicting after {attempt + 1} tries"
                    ) from e
                self.observer.retry("write", "conflict")
                await asyncio.sleep(retry.backoff(attempt))
        raise AssertionError("unreachable")

    async def _read_once(self, txn: Txn[T]) -> T:
        if self._async is not None:
            return await self._run_async(txn, write=False)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run_read, txn)

    async def _write_once(self, txn: Txn[T]) -> T:
        if self._async is not None:
            return await self._run_async(txn, write=True)
        loop = asyncio.get_running_loop()
        if self._group is None:
            return await loop.run_in_executor(self._threads, self._run_write, txn)
        result: T = await self._group.submit(txn)
        return result

    async def _write_batch(self, txns: Sequence[Txn[Any]]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run_batch, txns)

    def _connections(self) -> tuple[sa.Connection, sa.Connection]:
        """This database thread's reader and writer, opened on its first transaction
        (and again after :meth:`_drop`)."""
        me = threading.get_ident()
        mine = self._held.get(me)
        if mine is not None and mine[0] != self._generation:
            self._drop(found_dead=False)
            mine = None
        if mine is None:
            generation = self._generation
            try:
                reader = self.engine.connect().execution_options(**self._read_options)
                writer = self.engine.connect().execution_options(**self._write_options)
            except sa.exc.DBAPIError as e:
                raise retry.ConnectionLost(str(e.orig)) from e
            mine = self._held[me] = (generation, reader, writer)
        return mine[1], mine[2]

    def _drop(self, *, found_dead: bool = True) -> None:
        """Close this thread's connections; the next transaction opens fresh ones. When
        one was ``found_dead``, the other threads' connections are retired too."""
        if found_dead:
            self._generation += 1
        mine = self._held.pop(threading.get_ident(), None)
        for conn in mine[1:] if mine else ():
            with contextlib.suppress(Exception):
                conn.close()

    def _run_read(self, txn: Txn[T]) -> T:
        conn = self._connections()[0]
        try:
            conn.begin()
            try:
                return txn(conn)
            finally:
                conn.rollback()
        except sa.exc.DBAPIError as e:
            if retry.is_disconnect(e):
                self._drop()
                raise retry.ConnectionLost(str(e.orig)) from e
            raise

    def _run_write(self, txn: Txn[T]) -> T:
        conn = self._connections()[1]
        trans = conn.begin()
        try:
            result = txn(conn)
        except sa.exc.DBAPIError as e:
            self._abort(trans)
            if retry.is_disconnect(e):
                self._drop()
                raise retry.ConnectionLost(str(e.orig)) from e
            raise
        except BaseException:
            self._abort(trans)
            raise
        try:
            trans.commit()
        except sa.exc.DBAPIError as e:
            self._abort(trans)
            if retry.is_disconnect(e):
                self._drop()
                raise _unavailable(e) from e  # it may have committed: not ours to run again
            raise
        return result

    def _run_batch(self, txns: Sequence[Txn[Any]]) -> list[Outcome]:
        """SQLite's group commit: ``txns`` in one transaction, each in a savepoint of its
        own, so that one that raises is undone alone; an outcome per function. A failure
        of the whole (connection lost, COMMIT refused) is every function's."""
        if len(txns) == 1:
            try:
                return [(True, self._run_write(txns[0]))]
            except Exception as e:
                return [(False, e)]
        conn = self._connections()[1]
        trans = conn.begin()
        outcomes: list[Outcome] = []
        try:
            for txn in txns:
                conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    outcome: Outcome = (True, txn(conn))
                except sa.exc.DBAPIError as e:
                    if retry.is_disconnect(e):
                        raise
                    outcome = (False, e)
                except Exception as e:
                    outcome = (False, e)
                if not outcome[0]:
                    conn.exec_driver_sql(f"ROLLBACK TO {_SAVEPOINT}")
                conn.exec_driver_sql(f"RELEASE {_SAVEPOINT}")
                outcomes.append(outcome)
        except sa.exc.DBAPIError as e:
            self._abort(trans)
            if retry.is_disconnect(e):
                self._drop()
                lost = retry.ConnectionLost(str(e.orig))
                lost.__cause__ = e
                return [(False, lost)] * len(txns)
            return [(False, e)] * len(txns)
        except BaseException:
            self._abort(trans)
            raise
        try:
            trans.commit()
        except sa.exc.DBAPIError as e:
            self._abort(trans)
            failed: Exception = e
            if retry.is_disconnect(e):
                self._drop()
                failed = _unavailable(e)  # it may have committed: not ours to run again
            return [(False, failed)] * len(txns)
        return outcomes

    def _abort(self, trans: sa.RootTransaction) -> None:
        try:
            trans.rollback()
        except sa.exc.DBAPIError:
            self._drop()

    async def _run_async(self, txn: Txn[T], *, write: bool) -> T:
        """One try of ``txn`` on the asyncio engine, failing as the threads' tries do."""
        assert self._async is not None
        conn = self._async.connect()
        try:
            await conn.start()
        except sa.exc.DBAPIError as e:
            raise retry.ConnectionLost(str(e.orig)) from e
        try:
            try:
                await conn.execution_options(
                    **(self._write_options if write else self._read_options)
                )
                trans = await conn.begin()
                try:
                    result = await conn.run_sync(txn)
                finally:
                    if not write:
                        await trans.rollback()
            except sa.exc.DBAPIError as e:
                if retry.is_disconnect(e):
                    raise retry.ConnectionLost(str(e.orig)) from e
                raise
            if write:
                try:
                    await trans.commit()
                except sa.exc.DBAPIError as e:
                    if retry.is_disconnect(e):
                        raise _unavailable(e) from e
                    raise
            return result
        finally:
            await conn.close()

    async def close(self) -> None:
        if self._async is not None:
            self._threads.shutdown(wait=False)  # never used with an asyncio driver
            await self._async.dispose()
            return
        # Transactions still running finish first: a connection must not close under one.
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)
        held, self._held = self._held, {}
        for _generation, *conns in held.values():
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()
        self.engine.dispose()


def _locked_upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    upgrade(conn)


def _unavailable(exc: BaseException) -> Unavailable:
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return Unavailable(f"metadata database unavailable: {cause}")
