"""A highly available skymesh network spread over separate hosts, started as an operator
would start it.

The :class:`Layout` says what runs where; :class:`Cluster` starts it on a
:class:`~skymesh.testing.hosts.HostNetwork`: the database is a pg_auto_failover
formation (its monitor and two PostgreSQL servers, each on a host of its own); every
skymesh role is its own ``skymesh`` process on its host, bound to that host's address,
with a data folder of its own (``<root>/<host>/<role>``) that no other role's config
names. Two coordinators share the formation; gateways and nodes are given both. What
one role needs of another travels as it would between machines: the admin token is
written into the coordinators' configs and an admin token file on the first control
host (the operator's seat); each region's join token is the output of `skymesh
operator add`, written into its nodes' configs; the gateways' credentials file is
written on the first gateway host by `skymesh project add` and copied to the second
(the operator's scp), and its output (the S3 key and secret) is all the client host
gets.

skymesh's ports are fixed: each host has an address of its own, so nothing else can
hold them. PostgreSQL's are picked free (``start_formation``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skymesh.config import CoordinatorConfig, GatewayConfig, NodeConfig, config_to_toml
from skymesh.network.pgcluster import (
    TEST_SERVER_SETTINGS,
    Formation,
    FormationSpec,
    Instance,
    start_formation,
)
from skymesh.private import private_dir, write_private
from skymesh.testing.hosts import HostNetwork

PROBE = str(Path(__file__).with_name("probe.py"))
CONTROL, CONTROL2, GATEWAY, GATEWAY2 = "control", "control2", "gateway", "gateway2"
DB_MONITOR, DB1, DB2, CLIENT = "db-monitor", "db1", "db2", "client"
COORDINATOR_PORT, GATEWAY_PORT, NODE_BASE_PORT = 7700, 9000, 7801
HEARTBEAT = 2.0  # as `skymesh up`: a node is offline after 6 s without one
MiB = 1024 * 1024

# The coordinator's loops at test speed, through its environment (as the process tier).
FAST = {
    "SKYMESH_COORDINATOR_SCHEME": "4/7/8/8",  # 12 nodes; a region (4) may be cut off
    "SKYMESH_COORDINATOR_MAX_SEGMENT_SIZE": str(MiB),
    "SKYMESH_COORDINATOR_AUDIT_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_REPAIR_CHECK_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_REPAIR_INTERVAL": "0.2",
    "SKYMESH_COORDINATOR_REPAIR_RETRY_AFTER": "2",
    "SKYMESH_COORDINATOR_GC_GRACE": "2",
    "SKYMESH_COORDINATOR_GC_INTERVAL": "1",
    "SKYMESH_COORDINATOR_PENDING_UPLOAD_TTL": "20",
}


@dataclass(frozen=True)
class Layout:
    """What runs on which host: (role name, host) of the coordinators and gateways.

    Each coordinator and each gateway has a host of its own, so killing one is one
    machine lost, and every hop a request makes (client -> gateway -> coordinator ->
    database, gateway -> nodes) crosses the bridge: nothing can lean on two roles
    sharing a host. The database's monitor and its two servers have hosts of their own
    too: a server's "machine" dying is its host's processes.
    """

    regions: tuple[str, ...] = ("eu-west", "us-east", "ap-south")
    nodes_per_region: int = 4
    # the first control host is also the operator's seat
    coordinators: tuple[tuple[str, str], ...] = (
        ("coordinator", CONTROL),
        ("coordinator-2", CONTROL2),
    )
    gateways: tuple[tuple[str, str], ...] = (("gateway", GATEWAY), ("gateway-2", GATEWAY2))
    monitor_host: str = DB_MONITOR
    database_hosts: tuple[str, ...] = (DB1, DB2)

    def hosts(self) -> list[str]:
        return [
            *(host for _, host in self.coordinators),
            self.monitor_host,
            *self.database_hosts,
            *(host for _, host in self.gateways),
            *self.regions,
            CLIENT,
        ]

    def nodes(self) -> list[tuple[str, str, int]]:
        """(name, region, port) of every node; names are unique over the network."""
        return [
            (f"node-{region}-{i + 1}", region, NODE_BASE_PORT + i)
            for region in self.regions
            for i in range(self.nodes_per_region)
        ]


@dataclass
class Role:
    name: str
    kind: str  # "coordinator", "node" or "gateway": the `skymesh` command it runs
    host: str
    folder: Path  # its data folder, which only its config names
    url: str
    env: dict[str, str] = field(default_factory=dict)  # beyond clean_env()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "config.toml"

    @property
    def log(self) -> Path:
        return self.folder.parent / "logs" / f"{self.name}.log"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the CA bundle that breaks plain-http clients."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(extra)
    return env


@dataclass
class Cluster:
    net: HostNetwork
    layout: Layout
    root: Path
    coordinator_env: dict[str, str] = field(default_factory=lambda: dict(FAST))
    roles: dict[str, Role] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    access_key: str = ""
    secret_key: str = ""
    formation: Formation | None = None

    # ---------------------------------------------------------------- where things are

    def folder(self, host: str, role: str) -> Path:
        return self.root / host / role

    @property
    def coordinator_urls(self) -> list[str]:
        return [self.roles[name].url for name, _ in self.layout.coordinators]

    @property
    def coordinator_url(self) -> str:
        """Every coordinator, separated by commas, as `skymesh` commands and the probes
        take them: each tries them in turn, so it works while one is down."""
        return ",".join(self.coordinator_urls)

    @property
    def endpoints(self) -> list[str]:
        """Every gateway's S3 endpoint."""
        return [self.roles[name].url for name, _ in self.layout.gateways]

    @property
    def endpoint(self) -> str:
        return self.endpoints[0]

    @property
    def database(self) -> Formation:
        assert self.formation is not None, "the database is not started"
        return self.formation

    def database_host(self, instance: Instance) -> str:
        """The host a database instance runs on."""
        return next(n for n, h in self.net.hosts.items() if h.address == instance.host)

    @property
    def token_file(self) -> Path:
        """The admin token on the control host, for `skymesh operator` commands there."""
        return self.root / CONTROL / "admin" / "token"

    def node_names(self, region: str | None = None) -> list[str]:
        return [n for n, r, _ in self.layout.nodes() if region in (None, r)]

    # ---------------------------------------------------------------- running things

    def skymesh(self, host: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a `skymesh` command on ``host``; its stdout, after asserting success."""
        argv = [sys.executable, "-m", "skymesh", *args]
        return self.net.run(host, argv, env=clean_env(**(env or {}))).stdout

    def probe(self, host: str, *args: str, timeout: float = 90) -> str:
        env = clean_env(SKYMESH_ADMIN_TOKEN=self.admin_token)
        argv = [sys.executable, PROBE, *args]
        return self.net.run(host, argv, env=env, timeout=timeout).stdout

    def _start(self, role: Role) -> None:
        private_dir(role.log.parent)
        with open(role.log, "ab") as log:
            role.proc = self.net.popen(
                role.host,
                [sys.executable, "-m", "skymesh", role.kind, "--config", str(role.config)],
                env=clean_env(**role.env),
                stdout=log,
            )
        self.roles[role.name] = role

    def kill(self, name: str) -> float:
        """SIGKILL a role: no chance to clean up, as a crash. The wall-clock time of it."""
        proc = self.roles[name].proc
        assert proc is not None and proc.poll() is None, f"{name} is not running"
        proc.kill()
        at = time.time()
        proc.wait()
        return at

    def restart(self, name: str) -> None:
        """Start a stopped role again with its config and folder, until it answers."""
        role = self.roles[name]
        assert role.proc is None or role.proc.poll() is not None, f"{name} still runs"
        self._start(role)
        if role.kind != "node":
            self._wait(role, role.host, f"{role.url}/healthz")

    def _wait(self, role: Role, host: str, url: str, timeout: float = 60) -> None:
        out = self.net.run(
            host,
            [sys.executable, PROBE, "wait-http", url, str(timeout)],
            timeout=timeout + 10,
            check=False,
        )
        state = "running" if role.proc is not None and role.proc.poll() is None else "exited"
        assert out.returncode == 0, f"{role.name} ({state}): {out.stderr.strip()}; see {role.log}"

    # ---------------------------------------------------------------- start-up

    def start(self) -> Cluster:
        """Start everything; call from the main thread (the database's servers die with
        the thread that started them)."""
        self._start_database()
        self._start_coordinators()
        tokens = self._admit_operators()
        self._start_nodes(tokens)
        self.wait_online(timeout=90)
        self._start_gateways()
        return self

    def _start_database(self) -> None:
        """The formation: its monitor and two servers each on their host, run there."""
        hosts = [self.layout.monitor_host, *self.layout.database_hosts]
        self.formation = start_formation(
            FormationSpec(
                monitor_host=self.net.address(self.layout.monitor_host),
                node_hosts=tuple(self.net.address(h) for h in self.layout.database_hosts),
                client_cidrs=[str(self.net.subnet)],
                server_settings=TEST_SERVER_SETTINGS,
                netns={self.net.address(h): self.net.hosts[h].netns for h in hosts},
            )
        )

    def _start_coordinators(self) -> None:
        write_private(self.token_file, self.admin_token + "\n")
        for name, host in self.layout.coordinators:
            address = self.net.address(host)
            role = Role(
                name,
                "coordinator",
                host,
                self.folder(host, name),
                f"http://{address}:{COORDINATOR_PORT}",
                env=dict(self.coordinator_env),
            )
            config = CoordinatorConfig(
                data_dir=str(role.folder),
                host=address,
                port=COORDINATOR_PORT,
                database_url=self.database.url(),
                admin_token=self.admin_token,
                heartbeat_interval=HEARTBEAT,
                offline_after=3 * HEARTBEAT,
            )
            write_private(role.config, config_to_toml(config))
            self._start(role)
            # one at a time: the first to start migrates the database
            self._wait(role, host, f"{role.url}/healthz")

    def _admit_operators(self) -> dict[str, str]:
        """One operator per region host, admitted on the control host: region -> join token."""
        tokens = {}
        for region in self.layout.regions:
            out = self.skymesh(
                CONTROL,
                "operator",
                "add",
                f"operator-{region}",
                "--regions",
                region,
                "--json",
                "--coordinator",
                self.coordinator_url,
                "--admin-token-file",
                str(self.token_file),
            )
            tokens[region] = str(json.loads(out)["join_token"])
        return tokens

    def _start_nodes(self, tokens: dict[str, str]) -> None:
        for name, region, port in self.layout.nodes():
            address = self.net.address(region)
            url = f"http://{address}:{port}"
            role = Role(name, "node", region, self.folder(region, name), url)
            config = NodeConfig(
                data_dir=str(role.folder),
                host=address,
                port=port,
                region=region,
                operator=f"operator-{region}",
                join_token=tokens[region],
                capacity_bytes=10 * 1024 * MiB,
                coordinator_url=self.coordinator_urls[0],
                coordinator_urls=self.coordinator_urls,
                heartbeat_interval=HEARTBEAT,
                fsync=False,
            )
            write_private(role.config, config_to_toml(config))
            self._start(role)

    def _start_gateways(self) -> None:
        first = self.layout.gateways[0][1]
        made = self.folder(first, self.layout.gateways[0][0]) / "credentials.toml"
        self._add_project(first, made)
        for name, host in self.layout.gateways:
            address = self.net.address(host)
            url = f"http://{address}:{GATEWAY_PORT}"
            role = Role(name, "gateway", host, self.folder(host, name), url)
            credentials = role.folder / "credentials.toml"
            if credentials != made:  # the operator copies it to the other gateway hosts
                write_private(credentials, made.read_text())
            config = GatewayConfig(
                data_dir=str(role.folder),
                host=address,
                port=GATEWAY_PORT,
                coordinator_url=self.coordinator_urls[0],
                coordinator_urls=self.coordinator_urls,
                credentials_file=str(credentials),
            )
            write_private(role.config, config_to_toml(config))
            self._start(role)
            self._wait(role, CLIENT, f"{role.url}/healthz")

    def _add_project(self, host: str, credentials: Path) -> None:
        """`skymesh project add` on a gateway host: the S3 key and secret are all we keep."""
        # On the gateway host, so the S3 and encryption secrets are born where they live;
        # the admin token comes along for this one command only.
        out = self.skymesh(
            host,
            "project",
            "add",
            "default",
            "--credentials-file",
            str(credentials),
            "--coordinator",
            self.coordinator_url,
            "--json",
            env={"SKYMESH_ADMIN_TOKEN": self.admin_token},
        )
        made = json.loads(out)
        self.access_key, self.secret_key = made["access_key_id"], made["secret_access_key"]

    def s3_env(self, **extra: str) -> dict[str, str]:
        """The S3 clients' environment on the client host: our keys only, no config files,
        and every gateway as the endpoint (``s3ops.py`` moves on when one is gone)."""
        return clean_env(
            S3_ENDPOINT=",".join(self.endpoints),
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_PAGER="",
            **extra,
        )

    # ---------------------------------------------------------------- asking the network

    def nodes(self) -> list[dict[str, Any]]:
        """The coordinator's node list, asked from the control host."""
        return list(json.loads(self.probe(CONTROL, "nodes", self.coordinator_url))["nodes"])

    def wait_online(self, count: int | None = None, timeout: float = 60) -> None:
        count = len(self.layout.nodes()) if count is None else count
        try:
            self.probe(
                CONTROL,
                "wait-online",
                self.coordinator_url,
                str(count),
                str(timeout),
                timeout=timeout + 10,
            )
        except AssertionError as e:
            dead = [
                r.log for r in self.roles.values() if r.proc is None or r.proc.poll() is not None
            ]
            raise AssertionError(f"{e}\nexited: {[str(p) for p in dead]}") from e

    def durability(self) -> dict[str, Any]:
        """`skymesh durability --json`, run by the operator on the control host."""
        out = self.net.run(
            CONTROL,
            [
                sys.executable,
                "-m",
                "skymesh",
                "durability",
                "--json",
                "--coordinator",
                self.coordinator_url,
            ],
            env=clean_env(SKYMESH_ADMIN_TOKEN=self.admin_token),
            check=False,
            timeout=90,
        )
        assert out.returncode in (0, 1), f"skymesh durability exited {out.returncode}: {out.stderr}"
        report: dict[str, Any] = json.loads(out.stdout)
        return report

    def config_of(self, name: str) -> dict[str, Any]:
        import tomllib

        return tomllib.loads(self.roles[name].config.read_text())

    def stop(self) -> None:
        """SIGTERM every role (gateways, nodes, coordinators), then kill what lingers; then
        stop the database."""
        order = [
            *(name for name, _ in self.layout.gateways),
            *self.node_names(),
            *(name for name, _ in self.layout.coordinators),
        ]
        for name in order:
            proc = self.roles[name].proc if name in self.roles else None
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for name in order:
            proc = self.roles[name].proc if name in self.roles else None
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.formation is not None:
            self.formation.stop()
