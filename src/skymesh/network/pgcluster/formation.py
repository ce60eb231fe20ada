"""A pg_auto_failover formation on this machine: a monitor, a primary and its standby.

``start_formation`` creates and runs it, waits until the standby is in sync, and makes
the application's database and role; the ``Formation`` it returns gives the URL the
coordinators use and handles to kill, restart and watch each instance.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

from skymesh.network.pgcluster.instance import Instance, PgAutoctlError, run_autoctl
from skymesh.network.pgcluster.settings import FailoverTimeouts

MONITOR_DB = "pg_auto_failover"
# states in which a node takes writes: "wait_primary" when its standby is gone or not
# yet in sync (then commits wait for nobody), "primary" when commits wait for the standby
WRITABLE = ("single", "wait_primary", "primary")


@dataclass(frozen=True)
class NodeState:
    """One node's row of ``pg_autoctl show state --json``."""

    name: str
    host: str
    port: int
    current: str
    assigned: str
    healthy: bool

    @property
    def settled(self) -> bool:
        return self.current == self.assigned


@dataclass(frozen=True)
class FormationSpec:
    root: Path | None = None  # None: a fresh folder under the system's temp, removed at stop
    monitor_host: str = "127.0.0.1"
    node_hosts: Sequence[str] = ("127.0.0.1", "127.0.0.1")
    database: str = "skymesh"
    user: str = "skymesh"
    # addresses (CIDR) the coordinators connect from, beyond loopback; trusted, no password
    client_cidrs: Sequence[str] = ()
    ssl: bool = False  # True: --ssl-self-signed (encrypted, not authenticated)
    timeouts: FailoverTimeouts = field(default_factory=FailoverTimeouts)
    server_settings: Mapping[str, str] = field(default_factory=dict)
    # host address -> the network namespace (``ip netns``) that holds it: an instance on
    # such an address runs there, and so do the commands that reach it (needs root)
    netns: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Formation:
    spec: FormationSpec
    root: Path
    monitor: Instance
    nodes: list[Instance]
    env: dict[str, str]
    remove_root: bool

    @property
    def monitor_uri(self) -> str:
        sslmode = "require" if self.spec.ssl else "disable"
        return f"postgres://autoctl_node@{self.monitor.host}:{self.monitor.port}/{MONITOR_DB}?sslmode={sslmode}"

    def url(self, driver: str = "postgresql+psycopg", connect_timeout: int = 3) -> str:
        """The coordinators' SQLAlchemy URL: every node, and libpq keeps the one that takes
        writes. SQLAlchemy cannot parse ``h1:p1,h2:p2`` in the netloc; it passes each
        ``host=h:p`` query parameter on to psycopg as a multi-host conninfo.
        ``connect_timeout`` bounds the wait on a host that is gone without a word."""
        query = [("host", f"{n.host}:{n.port}") for n in self.nodes]
        query += [("target_session_attrs", "read-write"), ("connect_timeout", str(connect_timeout))]
        if self.spec.ssl:
            query.append(("sslmode", "require"))
        return f"{driver}://{self.spec.user}@/{self.spec.database}?{urlencode(query)}"

    def show_uri(self) -> str:
        """pg_auto_failover's own libpq URI of the formation (no user in it)."""
        out = run_autoctl(
            ["show", "uri", "--formation", "default", "--pgdata", str(self.monitor.pgdata)],
            self.env,
            self.monitor.log_path,
            netns=self.monitor.netns,
        )
        return out.strip()

    def events(self, count: int = 20) -> str:
        """The monitor's latest state changes, as ``pg_autoctl show events`` prints them."""
        return run_autoctl(
            ["show", "events", "--count", str(count), "--monitor", self.monitor_uri],
            self.env,
            self.monitor.log_path,
            netns=self.monitor.netns,
        )

    def states(self) -> list[NodeState]:
        out = run_autoctl(
            ["show", "state", "--json", "--monitor", self.monitor_uri],
            self.env,
            self.monitor.log_path,
            netns=self.monitor.netns,
        )
        return [
            NodeState(
                name=row["nodename"],
                host=row["nodehost"],
                port=int(row["nodeport"]),
                current=row["current_group_state"],
                assigned=row["assigned_group_state"],
                healthy=row["health"] == 1,
            )
            for row in json.loads(out or "[]")
        ]

    def node(self, name: str) -> Instance:
        return next(n for n in self.nodes if n.name == name)

    def primary(self) -> Instance | None:
        """The node the monitor knows as taking writes now, if any."""
        for s in self.states():
            if s.settled and s.current in WRITABLE:
                return self.node(s.name)
        return None

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Until one node is "primary" and the other "secondary": commits wait for both."""

        def in_sync(states: list[NodeState]) -> bool:
            return sorted(s.current for s in states if s.settled) == ["primary", "secondary"]

        self.wait_until(in_sync, "a primary with a secondary in sync", timeout)

    def wait_promotion(self, old: Instance, timeout: float = 120.0) -> Instance:
        """Until a node other than ``old`` takes writes; return it."""

        def promoted(states: list[NodeState]) -> bool:
            return any(s.settled and s.current in WRITABLE and s.name != old.name for s in states)

        self.wait_until(promoted, f"a primary other than {old.name}", timeout)
        primary = self.primary()
        assert primary is not None and primary is not old
        return primary

    def wait_until(
        self, done: Callable[[list[NodeState]], bool], what: str, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        states: list[NodeState] = []
        while True:
            try:
                states = self.states()
            except PgAutoctlError:  # the monitor is (re)starting
                pass
            else:
                if done(states):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} after {timeout} s: {states}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the nodes, then the monitor; remove the root if we made it."""
        for inst in [*self.nodes, self.monitor]:
            inst.stop()
        if self.remove_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Formation:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
