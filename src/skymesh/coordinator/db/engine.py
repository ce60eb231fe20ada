"""Opening the metadata database, and the two kinds of transaction every operation uses.

Every transaction is a plain function over a SQLAlchemy ``Connection``
(``def txn(conn) -> result``) that :meth:`Database.read` or :meth:`Database.write`
runs as a whole:

- SQLite (the embedded default) runs in-process with the stdlib driver, so each
  transaction runs whole on a small pool of database threads: one hop off the
  event loop per transaction, not one (or three) per statement as through
  SQLAlchemy's asyncio engine over aiosqlite. WAL mode lets readers run beside
  the writer; foreign keys are on; there is a busy timeout for other processes.
  SQLite has one writer at a time: writers queue on an ``asyncio.Lock`` and
  take the write lock up front (``BEGIN IMMEDIATE``), so a transaction that
  reads then writes never fails half way with "database is locked". Each
  database thread keeps its own two connections (one for reads, one for
  writes) for its whole life, so no transaction pays for a pool checkout.
- A URL with an asyncio driver (``postgresql+asyncpg://``) gets SQLAlchemy's
  asyncio engine, and the same function runs through ``AsyncConnection.run_sync``.
  A sync server driver (``postgresql://``, psycopg) runs on the threads like SQLite.

Migrations (Alembic, in ``migrations/``) run at every start; on an up-to-date
database they do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event

from skymesh.private import make_dirs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DB_FILE = "coordinator.db"
BUSY_TIMEOUT_MS = 10_000
DB_THREADS = 4
_IMMEDIATE = "skymesh_immediate"

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


class Database:
    """An engine, and :meth:`read` / :meth:`write` to run transactions on it."""

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            parsed = parsed.set(drivername="sqlite")  # the stdlib driver, on our threads
            path = parsed.database
            if path and path != ":memory:":
                make_dirs(Path(path).parent)
        self._async: AsyncEngine | None = None
        if parsed.get_dialect().is_async:
            # Imported here: SQLAlchemy's asyncio layer needs greenlet, which only
            # asyncio drivers (asyncpg) bring along.
            from sqlalchemy.ext.asyncio import create_async_engine

            self._async = create_async_engine(parsed)
            self.engine = self._async.sync_engine
        else:
            connect_args = {"check_same_thread": False} if self.is_sqlite else {}
            self.engine = sa.create_engine(
                parsed, connect_args=connect_args, pool_size=2 * DB_THREADS + 1
            )
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.url = parsed.render_as_string(hide_password=True)
        self._writer = self.engine.execution_options(**{_IMMEDIATE: True})
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._threads = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="db")
        # each database thread's (reader, writer), by thread id; only that thread adds its own
        self._held: dict[int, tuple[sa.Connection, sa.Connection]] = {}

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        db = cls(url)
        if migrate:
            try:
                await db.write(upgrade)
            except BaseException:
                await db.close()
                raise
        return db

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is there)."""
        await self.write(upgrade)

    async def read(self, txn: Txn[T]) -> T:
        """Run ``txn`` in a read-only snapshot (rolled back at the end)."""
        if self._async is not None:
            async with self._async.connect() as conn:
                return await conn.run_sync(txn)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run_read, txn)

    async def write(self, txn: Txn[T]) -> T:
        """Run ``txn`` in a write transaction: committed if it returns, rolled back if it raises."""
        if self._async is not None:
            async with self._async.begin() as conn:
                return await conn.run_sync(txn)
        loop = asyncio.get_running_loop()
        if self._write_lock is None:
            return await loop.run_in_executor(self._threads, self._run_write, txn)
        async with self._write_lock:
            running = loop.run_in_executor(self._threads, self._run_write, txn)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                # The thread goes on; hold the lock until it is done, so writers stay one at a time.
                with contextlib.suppress(Exception):
                    await running
                raise

    def _connections(self) -> tuple[sa.Connection, sa.Connection]:
        """This database thread's reader and writer, opened on its first transaction."""
        me = threading.get_ident()
        mine = self._held.get(me)
        if mine is None:
            mine = self._held[me] = (self.engine.connect(), self._writer.connect())
        return mine

    def _run_read(self, txn: Txn[T]) -> T:
        conn = self._connections()[0]
        conn.begin()
        try:
            return txn(conn)
        finally:
            conn.rollback()

    def _run_write(self, txn: Txn[T]) -> T:
        conn = self._connections()[1]
        with conn.begin():
            return txn(conn)

    async def close(self) -> None:
        if self._async is not None:
            self._threads.shutdown(wait=False)  # never used with an asyncio driver
            await self._async.dispose()
            return
        # Transactions still running finish first: a connection must not close under one.
        await asyncio.to_thread(self._threads.shutdown, wait=True, cancel_futures=True)
        held, self._held = self._held, {}
        for conns in held.values():
            for conn in conns:
                conn.close()
        self.engine.dispose()
