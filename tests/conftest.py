"""Shared fixtures: a live in-process network (``planet``), the metadata database on
each engine (``database_url``), and helpers for real clients."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from skymesh.coordinator.db.engine import Database, default_url
from skymesh.testing import sqlite_template
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.testing.postgres import PostgresServer

# A boto3 S3 client. boto3 builds its clients at run time and ships no types, so
# tests name it through this one alias instead of installing a stubs package.
S3Client: TypeAlias = Any


@pytest.fixture(scope="module")
def planet_engine(request: pytest.FixtureRequest) -> str:
    """The metadata engine of a module's planets: SQLite, unless the module runs on both
    engines (``pytestmark = ON_BOTH_ENGINES``)."""
    return str(getattr(request, "param", "sqlite"))


def planet_config(request: pytest.FixtureRequest, engine: str, **fields: Any) -> PlanetConfig:
    """A planet's config on ``engine``: on PostgreSQL, with a fresh database of its own."""
    if engine == "postgresql":
        fields["database_url"] = fresh_postgres_database(request)
    return PlanetConfig(**fields)


@pytest.fixture(scope="module")
def planet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, planet_engine: str
) -> Iterator[PlanetThread]:
    """A coordinator, 12 nodes over three regions and a gateway, shared by a test module."""
    root = tmp_path_factory.mktemp("planet")
    thread = PlanetThread(Planet(root, planet_config(request, planet_engine))).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def own_planet(
    request: pytest.FixtureRequest, tmp_path: Path, planet_engine: str
) -> Iterator[PlanetThread]:
    """A planet for one test alone: for a test that leaves behind what no later test
    should inherit (a disqualified node, one more node, segments repaired)."""
    config = planet_config(request, planet_engine)
    thread = PlanetThread(Planet(tmp_path / "planet", config)).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def s3(planet: PlanetThread) -> S3Client:
    """A boto3 client of the module's planet gateway, shared by the module's tests."""
    return planet.boto3()


ENGINES = ["sqlite", "postgresql"]
#: ``pytestmark = ON_BOTH_ENGINES``: the module's planets run on SQLite, then on PostgreSQL.
ON_BOTH_ENGINES = pytest.mark.parametrize("planet_engine", ENGINES, indirect=True, scope="module")
PG_TEMPLATE = "skymesh_template"
_pg_names = itertools.count()


#: Where the session's server keeps its data when the machine has room in memory: each
#: test's database is a copy of the template (8 MiB, about 1,000 files), made and
#: dropped several times faster on tmpfs than on a disk other runs share.
PG_MEMORY_DIR = Path("/dev/shm")
PG_MEMORY_NEEDED = 1024**3  # a few live databases, the template and the WAL, with room


def _pg_parent() -> Path | None:
    try:
        if shutil.disk_usage(PG_MEMORY_DIR).free >= PG_MEMORY_NEEDED:
            return PG_MEMORY_DIR
    except OSError:
        pass
    return None  # the system's temporary folder


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started when a test first asks for it.
    Without Debian's ``postgresql`` package installed, the tests that ask fail."""
    with PostgresServer(parent=_pg_parent()) as server:
        yield server


async def _migrate(url: str) -> None:
    db = await Database.open(url)
    await db.close()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A database migrated to the newest schema once, that each test's database copies
    (``CREATE DATABASE ... TEMPLATE``: a file copy, much faster than migrating)."""
    url = postgres.create_database(PG_TEMPLATE)
    # on a thread of its own: the first test to ask may be running an event loop
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _migrate(url)).result()
    return PG_TEMPLATE


def fresh_postgres_database(request: pytest.FixtureRequest, *, migrated: bool = True) -> str:
    """The URL of a new database of its own on the session's server, dropped when
    ``request``'s fixture (or test) is torn down: called by a fixture, after what that
    fixture yielded is stopped. Dropping keeps the server's folder small, so the
    session's end does not wait on removing a copy per test."""
    server: PostgresServer = request.getfixturevalue("postgres")
    template = request.getfixturevalue("postgres_template") if migrated else None
    name = f"test_{next(_pg_names)}"
    url = server.create_database(name, template=template)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata database of the test's own, on each engine in turn, migrated to the
    newest schema: a SQLite file, or a database on the session's PostgreSQL server (each
    a copy of a template migrated once: ``skymesh.testing.sqlite_template``, and
    ``postgres_template``)."""
    if request.param == "sqlite":
        return sqlite_template.seeded_url(tmp_path / "db")
    return fresh_postgres_database(request)


@pytest.fixture(scope="module", params=ENGINES)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """As ``database_url``, shared by a module's tests (each engine in turn)."""
    if request.param == "sqlite":
        return sqlite_template.seeded_url(tmp_path_factory.mktemp("db"))
    return fresh_postgres_database(request)


@pytest.fixture(params=ENGINES)
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """As ``database_url``, but empty: for tests of the migrations themselves."""
    if request.param == "sqlite":
        return default_url(tmp_path / "db")
    return fresh_postgres_database(request, migrated=False)


@pytest.fixture(autouse=True, scope="session")
def _plain_http_env() -> None:
    # The environment may point AWS tools at a CA bundle; our endpoints are plain http.
    os.environ.pop("AWS_CA_BUNDLE", None)


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Incompressible test data, fast and reproducible."""
    import random

    return random.Random(seed).randbytes(n)


def write_random_file(path: Path, size: int, seed: int = 0) -> Path:
    import random

    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * 1024 * 1024)
            f.write(rnd.randbytes(n))
            left -= n
    return path
