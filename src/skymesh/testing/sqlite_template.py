"""A coordinator's SQLite database migrated once per process, copied for each test.

Migrating a blank SQLite database to the newest schema (every Alembic revision, then a
synchronous commit) costs a coordinator ~0.1 s of CPU and its fsyncs; the suite opens
hundreds. Each coordinator that tests and planets start on a SQLite file of its own
begins from a copy of one database migrated at first use instead (as each test's
PostgreSQL database copies a migrated template, ``tests/conftest.py``). The copy is
the same schema and rows a migration would write; the coordinator still runs its
migrations on it, which find nothing to do. The migrations themselves are tested on
blank databases (``blank_database_url``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import sqlite3
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skymesh.coordinator.db.engine import DB_FILE, Database, default_url
from skymesh.private import make_dirs

_lock = threading.Lock()
_template: Path | None = None


async def _migrate(url: str) -> None:
    db = await Database.open(url)
    await db.close()


def template() -> Path:
    """The migrated database file of this process (made on first call)."""
    global _template
    with _lock:
        if _template is None:
            folder = Path(tempfile.mkdtemp(prefix="skymesh-sqlite-template-"))
            atexit.register(shutil.rmtree, folder, True)
            # on a thread of its own: the caller may be running an event loop
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, _migrate(default_url(folder))).result()
            path = folder / DB_FILE
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the file copied
            _template = path
        return _template


def seed(path: Path) -> Path:
    """Put a copy of :func:`template` at ``path`` unless a database is there already
    (a coordinator started again keeps its own); returns ``path``."""
    path = Path(path)
    if not path.exists():
        make_dirs(path.parent)  # owner-only, as the coordinator makes its folders
        shutil.copyfile(template(), path)
    return path


def seeded_url(data_dir: Path) -> str:
    """``default_url(data_dir)``, the database there seeded first: a coordinator with
    ``data_dir`` and no ``database_url`` opens that same file."""
    seed(Path(data_dir) / DB_FILE)
    return default_url(data_dir)
