"""A skymesh network spread over separate hosts, started as an operator would start it.

The :class:`Layout` says what runs where; :class:`Cluster` starts it on a
:class:`~skymesh.testing.hosts.HostNetwork`: every role is its own ``skymesh``
process on its host, bound to that host's address, with a data folder of its own
(``<root>/<host>/<role>``) that no other role's config names. What one role needs of
another travels as it would between machines: the admin token is written into the
coordinator's config and an admin token file on the control host (the operator's
seat); each region's join token is the output of `skymesh operator add`, written
into its nodes' configs; the gateway's credentials file is written on the gateway
host by `skymesh project add`, whose output (the S3 key and secret) is all the
client host gets.

Ports are fixed: each host has an address of its own, so nothing else can hold them.
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
from skymesh.private import private_dir, write_private
from skymesh.testing.hosts import HostNetwork

PROBE = str(Path(__file__).with_name("probe.py"))
CONTROL, GATEWAY, CLIENT = "control", "gateway", "client"
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
    """What runs on which host.

    ``coordinators`` all run on the control host, each on its own port: one today
    (SQLite in its folder). Several need a shared database (a PostgreSQL server on
    the control host and ``database_url`` in each config) and gateways and nodes
    that take several coordinator URLs; the layout already lists them.
    """

    regions: tuple[str, ...] = ("eu-west", "us-east", "ap-south")
    nodes_per_region: int = 4
    coordinators: tuple[str, ...] = ("coordinator",)
    # The gateway has a host of its own, not the control host's: then every hop a
    # request makes (client -> gateway -> coordinator, gateway -> nodes) crosses the
    # bridge, and nothing can lean on the gateway and coordinator sharing a host.
    gateway_host: str = GATEWAY

    def hosts(self) -> list[str]:
        return [CONTROL, self.gateway_host, *self.regions, CLIENT]

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
    host: str
    folder: Path  # its data folder, which only its config names
    url: str
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

    # ---------------------------------------------------------------- where things are

    def folder(self, host: str, role: str) -> Path:
        return self.root / host / role

    @property
    def coordinator_url(self) -> str:
        return self.roles[self.layout.coordinators[0]].url

    @property
    def endpoint(self) -> str:
        return self.roles["gateway"].url

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

    def _start(self, role: Role, kind: str, env: dict[str, str] | None = None) -> None:
        private_dir(role.log.parent)
        with open(role.log, "ab") as log:
            role.proc = self.net.popen(
                role.host,
                [sys.executable, "-m", "skymesh", kind, "--config", str(role.config)],
                env=clean_env(**(env or {})),
                stdout=log,
            )
        self.roles[role.name] = role

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
        self._start_coordinators()
        tokens = self._admit_operators()
        self._start_nodes(tokens)
        self.wait_online(timeout=90)
        self._start_gateway()
        return self

    def _start_coordinators(self) -> None:
        address = self.net.address(CONTROL)
        write_private(self.token_file, self.admin_token + "\n")
        for i, name in enumerate(self.layout.coordinators):
            role = Role(
                name,
                CONTROL,
                self.folder(CONTROL, name),
                f"http://{address}:{COORDINATOR_PORT + i}",
            )
            config = CoordinatorConfig(
                data_dir=str(role.folder),
                host=address,
                port=COORDINATOR_PORT + i,
                admin_token=self.admin_token,
                heartbeat_interval=HEARTBEAT,
                offline_after=3 * HEARTBEAT,
            )
            write_private(role.config, config_to_toml(config))
            self._start(role, "coordinator", self.coordinator_env)
        for name in self.layout.coordinators:
            role = self.roles[name]
            self._wait(role, CONTROL, f"{role.url}/healthz")

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
            role = Role(name, region, self.folder(region, name), f"http://{address}:{port}")
            config = NodeConfig(
                data_dir=str(role.folder),
                host=address,
                port=port,
                region=region,
                operator=f"operator-{region}",
                join_token=tokens[region],
                capacity_bytes=10 * 1024 * MiB,
                coordinator_url=self.coordinator_url,
                heartbeat_interval=HEARTBEAT,
                fsync=False,
            )
            write_private(role.config, config_to_toml(config))
            self._start(role, "node")

    def _start_gateway(self) -> None:
        host = self.layout.gateway_host
        address = self.net.address(host)
        role = Role(
            "gateway", host, self.folder(host, "gateway"), f"http://{address}:{GATEWAY_PORT}"
        )
        credentials = role.folder / "credentials.toml"
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
        config = GatewayConfig(
            data_dir=str(role.folder),
            host=address,
            port=GATEWAY_PORT,
            coordinator_url=self.coordinator_url,
            credentials_file=str(credentials),
        )
        write_private(role.config, config_to_toml(config))
        self._start(role, "gateway")
        self._wait(role, CLIENT, f"{role.url}/healthz")

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
        """SIGTERM every role (gateway, nodes, coordinators), then kill what lingers."""
        order = ["gateway", *self.node_names(), *self.layout.coordinators]
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
