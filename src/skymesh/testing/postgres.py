"""A real PostgreSQL server in a temporary folder, for tests and benchmarks.

:class:`PostgresServer` runs Debian's server binaries (``apt-get install postgresql``):
``initdb`` into a fresh folder, then ``postgres`` on a free port with its unix socket
inside that folder, so it shares nothing with a cluster the machine may run. The
server refuses to run as root: as root, both run as the ``postgres`` user the
package creates, and the folder belongs to it. Settings trade durability for speed
(no fsync); never point it at data that matters.

Missing binaries raise :class:`PostgresMissing`: a test that needs PostgreSQL fails
and says what to install, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from skymesh.children import die_with_parent_by
from skymesh.pgprocs import (
    PG_USER,
    as_pg_user,
    free_port,
    give_to_pg_user,
    pg_bin_dir,
)

SUPERUSER = PG_USER
START_TIMEOUT = 30.0
#: Test speed over durability: a lost test database costs nothing.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresServer:
    """One PostgreSQL server: :meth:`start` it, :meth:`url` for a database on it,
    :meth:`stop` it (immediately, as a crash would), :meth:`close` to remove it all."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Mapping[str, str] | None = None,
        parent: Path | None = None,
    ) -> None:
        """``settings`` replace the test-speed ones (``SETTINGS``) of the same names: a
        benchmark keeps ``fsync`` and ``synchronous_commit`` on, as production does.
        ``parent``: the folder to make the server's folder in (the system's temporary
        folder by default; a test session gives a memory-backed one, ``/dev/shm``)."""
        self.bindir = pg_bin_dir()
        self.settings = {**SETTINGS, **(settings or {})}
        self.host = host
        self.port = port or free_port(host)
        self.root = Path(tempfile.mkdtemp(prefix="skymesh-pg-", dir=parent))
        self.data = self.root / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        # As root, the server runs as the package's user and owns its folder.
        self._as = as_pg_user()
        give_to_pg_user(self.root)
        self._run([self.bindir / "initdb", "-D", self.data, "-U", SUPERUSER, "-A", "trust"])

    def _run(self, argv: list[Any]) -> None:
        done = subprocess.run(
            [str(a) for a in argv], capture_output=True, env=self._env(), **self._as
        )
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs (its backends are its children)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> PostgresServer:
        """Start the server (again, after :meth:`stop`, on the same port and data) and
        wait until it accepts connections."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += [
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"unix_socket_directories={self.root}",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child holds it
        try:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,  # a Ctrl-C in the test run is not the server's
                # an immediate shutdown when the process that started it dies: a
                # killed test run leaves no server behind
                preexec_fn=die_with_parent_by(signal.SIGQUIT),
                **self._as,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if not self.running or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PostgreSQL did not start:\n{tail}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server at once (an immediate shutdown: no checkpoint, as a crash)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str) -> str:
        """A libpq connection string (for psycopg directly)."""
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """A SQLAlchemy URL of database ``dbname`` (the default driver, psycopg 3)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template``, if given); returns its URL.
        A template must have no open connections while it is copied."""
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(stmt)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending any connections still open to it."""
        stmt = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(stmt)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()
