"""PostgreSQL failover under the coordinators' URL: a real pg_auto_failover formation
(monitor, primary, synchronous standby), its primary's machine killed mid-write.

Needs ``pg_autoctl`` (Debian's ``postgresql-15-auto-failover``, which ``.ci/run``
installs): without it the tests fail, they do not skip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from skymesh.network.pgcluster import (
    TEST_SERVER_SETTINGS,
    Formation,
    FormationSpec,
    start_formation,
)

pytestmark = pytest.mark.slow

FAILOVER_BOUND_S = 60.0


@pytest.fixture(scope="module")
def formation() -> Iterator[Formation]:
    t0 = time.monotonic()
    f = start_formation(FormationSpec(server_settings=TEST_SERVER_SETTINGS))
    print(f"\nformation in sync {time.monotonic() - t0:.1f} s after start")
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def engine(formation: Formation) -> Iterator[sa.Engine]:
    eng = sa.create_engine(formation.url(), pool_pre_ping=True)
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE acked (id integer PRIMARY KEY)"))
    yield eng
    eng.dispose()


def _insert(engine: sa.Engine, row: int) -> int:
    """Insert one row in its own transaction; return the port of the server that took it."""
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO acked VALUES (:id)"), {"id": row})
        return int(c.execute(sa.text("SELECT inet_server_port()")).scalar_one())


def _write_until(engine: sa.Engine, row: int, bound: float) -> tuple[float, int]:
    """Retry one insert through the engine (a new connection each time) until it commits;
    return the seconds it took and the port that took it."""
    t0 = time.monotonic()
    while True:
        try:
            port = _insert(engine, row)
            return time.monotonic() - t0, port
        except sa.exc.OperationalError:
            if time.monotonic() - t0 > bound:
                raise
            time.sleep(0.1)


def test_url_names_the_formation_and_commits_wait_for_the_standby(
    formation: Formation, engine: sa.Engine
) -> None:
    ours = parse_qs(urlsplit(formation.url()).query)["host"]
    theirs = urlsplit(formation.show_uri()).netloc.split(",")
    assert sorted(ours) == sorted(theirs)
    with engine.connect() as c:
        # pg_auto_failover's default (number_sync_standbys 0, replication quorum on) is
        # "ANY 1" of the standbys: a commit returns once the standby flushed it
        assert c.execute(sa.text("SHOW synchronous_standby_names")).scalar_one().startswith("ANY 1")
        assert c.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "on"


def test_postgres_crash_restarts_in_place(formation: Formation, engine: sa.Engine) -> None:
    primary = formation.primary()
    assert primary is not None
    primary.kill("postgres")
    took, port = _write_until(engine, -1, FAILOVER_BOUND_S)
    print(f"\npostgres crash: writes back after {took:.1f} s, on port {port} (was {primary.port})")
    print(formation.events(12))
    formation.wait_in_sync()


def test_machine_death_loses_no_acknowledged_write(formation: Formation, engine: sa.Engine) -> None:
    old = formation.primary()
    assert old is not None
    acked: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        row = 0
        while not stop.is_set():
            try:
                _insert(engine, row)
            except sa.exc.OperationalError:
                return  # the primary is gone; this row may or may not have committed
            acked.append(row)
            row += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.0)
    old.kill("machine")
    killed_at = time.monotonic()
    took, port = _write_until(engine, 1_000_000, FAILOVER_BOUND_S)
    stop.set()
    thread.join()
    new = formation.wait_promotion(old, timeout=10)
    print(
        f"\nprimary machine killed after {len(acked)} acknowledged writes: a write commits "
        f"again after {took:.1f} s, on {new.name}"
    )
    assert port == new.port != old.port
    assert took < FAILOVER_BOUND_S
    with engine.connect() as c:
        present = set(c.execute(sa.text("SELECT id FROM acked")).scalars())
    assert acked and set(acked) <= present

    # the machine comes back: its keeper rejoins it as the new primary's standby
    old.start()
    formation.wait_in_sync(timeout=120)
    print(f"old primary back in sync {time.monotonic() - killed_at:.1f} s after the kill")
