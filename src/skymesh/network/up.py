"""Run a local skymesh network: a coordinator, provider nodes over simulated regions, a gateway.

Every role runs as its own child process (``python -m skymesh <role> --config
...``), exactly as an operator would run it, and keeps its data under one home
directory, so stopping and starting again serves the same objects. The first
start creates a project, an S3 access key and the gateway's credentials file;
every start admits the local operators and gives each node its operator's join
token, as a network's administrator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec

from skymesh import console
from skymesh.admin import AdminClient, InferenceKeys
from skymesh.children import die_with_parent
from skymesh.config import (
    CoordinatorConfig,
    Credential,
    GatewayConfig,
    NodeConfig,
    config_to_toml,
    load_credentials,
    load_credentials_file,
    write_credentials,
)
from skymesh.errors import ConfigError, SkymeshError
from skymesh.network.distance import Distance, NodeSite
from skymesh.network.pgcluster import Formation
from skymesh.network.rtt import RttMatrix
from skymesh.private import make_dirs, private_dir, write_private
from skymesh.tls import LocalTls, ensure_local_tls
from skymesh.wire import routes

log = logging.getLogger(__name__)

# Four regions, two of them in the EU, so the `eu` location constraint is a group.
DEFAULT_REGIONS = ("eu-west", "us-east", "ap-south", "eu-central")
GiB = 1024**3


@dataclass(frozen=True)
class NetworkSpec:
    home: Path
    nodes: int = 12
    regions: Sequence[str] = DEFAULT_REGIONS
    host: str = "127.0.0.1"
    gateway_port: int = 9000
    coordinator_port: int = 7700
    node_base_port: int = 7801
    node_capacity: int = 100 * GiB
    heartbeat_interval: float = 2.0
    fsync: bool = True
    log_level: str = "INFO"
    # every gateway serves HTTPS with a certificate of a local CA under home/tls
    tls: bool = False
    # one compute node per region when the ai extra is installed
    compute: bool = True
    compute_regions: Sequence[str] = ()  # regions whose first node computes; empty: all
    # a gateway per region, delayed links to compute nodes (network/distance.py)
    distance: bool = False
    rtt_matrix: RttMatrix = field(default_factory=RttMatrix.default)
    # highly available: PostgreSQL primary and standby under pg_auto_failover, two
    # coordinators on it (coordinator_port and the next), two gateways (gateway_port and
    # the next); nodes and gateways know both coordinators. The database lives in a
    # temporary folder, so an HA network starts fresh each time (in home, made anew).
    ha: bool = False

    @property
    def coordinator_ports(self) -> list[int]:
        return [self.coordinator_port + i for i in range(2 if self.ha else 1)]

    @property
    def gateway_ports(self) -> list[int]:
        return [self.gateway_port + i for i in range(2 if self.ha else 1)]


class NetworkState(msgspec.Struct, kw_only=True):
    """What ``up`` remembers between starts, in ``home/state.json`` (owner-only)."""

    admin_token: str
    project_id: str = ""
    access_key_id: str = ""
    inference_key: str = ""  # the default project's OpenAI API key, printed in the banner


def home_dir(explicit: str | None = None) -> Path:
    """``$SKYMESH_HOME``, else ``.skymesh`` in the working directory."""
    return Path(explicit or os.environ.get("SKYMESH_HOME") or ".skymesh").resolve()


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    # a role restarted by hand (chaos tests) may have its own environment or entry point
    env: dict[str, str] | None = None  # None: this process's environment
    module: str = "skymesh"  # run as ``python -m <module> <args>``

    def start(self) -> None:
        make_dirs(self.log_path.parent)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            preexec_fn=die_with_parent,
        )
        logf.close()
        write_private(self.pid_path, f"{self.proc.pid}\n")

    @property
    def pid_path(self) -> Path:
        return self.log_path.parent.parent / "run" / f"{self.name}.pid"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Network:
    spec: NetworkSpec
    children: list[Child] = field(default_factory=list)
    credential: Credential | None = None
    inference_key: str = ""
    gateways: dict[str, str] = field(default_factory=dict)  # region -> endpoint (--distance)
    distance: Distance | None = None
    tls: LocalTls | None = None  # with spec.tls, once start() has made or found the files
    formation: Formation | None = None  # with spec.ha: the PostgreSQL primary and standby

    @property
    def endpoint(self) -> str:
        return self._gateway_url(self.spec.gateway_port)

    def _gateway_url(self, port: int) -> str:
        return f"{'https' if self.spec.tls else 'http'}://{self.spec.host}:{port}"

    def _gateway_tls(self) -> tuple[str, str]:
        """A gateway's ``tls_cert`` and ``tls_key``: both empty (plain HTTP) without --tls."""
        return (str(self.tls.cert), str(self.tls.key)) if self.tls else ("", "")

    @property
    def coordinator_url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.coordinator_port}"

    @property
    def coordinator_urls(self) -> list[str]:
        """Every coordinator's URL: gateways and nodes are given them all."""
        return [f"http://{self.spec.host}:{port}" for port in self.spec.coordinator_ports]

    @property
    def database_url(self) -> str:
        """The coordinators' database: the formation's (``--ha``), else each one's SQLite."""
        return self.formation.url() if self.formation is not None else ""

    # ------------------------------------------------------------ configuration

    def _state(self) -> NetworkState:
        path = self.spec.home / "state.json"
        if path.exists():
            return msgspec.json.decode(path.read_bytes(), type=NetworkState)
        state = NetworkState(admin_token=secrets.token_urlsafe(24))
        self._save_state(state)
        return state

    def _save_state(self, state: NetworkState) -> None:
        write_private(self.spec.home / "state.json", msgspec.json.encode(state))

    def write_configs(self, state: NetworkState) -> None:
        """The coordinators' and the gateways' configs (nodes' wait for their tokens)."""
        s = self.spec
        for i, port in enumerate(s.coordinator_ports):
            coord = CoordinatorConfig(
                data_dir=str(_coordinator_home(s, i)),
                host=s.host,
                port=port,
                database_url=self.database_url,
                admin_token=state.admin_token,
                heartbeat_interval=s.heartbeat_interval,
                offline_after=max(3 * s.heartbeat_interval, 6.0),
                # a local network's compute nodes serve at once; a real network's wait
                # until their storage audits have vetted them (docs/inference.md "Trust")
                compute_vetting_audits=0,
            )
            self._write(_coordinator_home(s, i) / "config.toml", config_to_toml(coord))
        tls_cert, tls_key = self._gateway_tls()
        for i, port in enumerate(s.gateway_ports):
            gw = GatewayConfig(
                data_dir=str(_ha_gateway_home(s, i)),
                host=s.host,
                port=port,
                coordinator_url=self.coordinator_url,
                coordinator_urls=self.coordinator_urls if s.ha else [],
                # every gateway serves the same projects, with the first one's credentials
                credentials_file=str(s.home / "gateway" / "credentials.toml"),
                tls_cert=tls_cert,
                tls_key=tls_key,
            )
            self._write(_ha_gateway_home(s, i) / "config.toml", config_to_toml(gw))

    def node_configs(self) -> list[NodeConfig]:
        """Every node's config, without its join token yet."""
        s = self.spec
        configs = []
        for i in range(s.nodes):
            region = s.regions[i % len(s.regions)]
            node = NodeConfig(
                data_dir=str(s.home / "nodes" / f"node-{i + 1:02d}"),
                host=s.host,
                port=s.node_base_port + i,
                region=region,
                operator=f"operator-{i // len(s.regions) % 4 + 1}-{region}",
                capacity_bytes=s.node_capacity,
                coordinator_url=self.coordinator_url,
                coordinator_urls=self.coordinator_urls if s.ha else [],
                heartbeat_interval=s.heartbeat_interval,
                fsync=s.fsync,
            )
            # the first node of each computing region also serves inference
            if i < len(s.regions) and _compute_on(s) and _computes(s, region):
                node = msgspec.structs.replace(
                    node, compute=True, model_credentials=str(_models_credentials(s))
                )
            configs.append(node)
        return configs

    async def admit_operators(
        self, session: aiohttp.ClientSession, admin_token: str, nodes: Sequence[NodeConfig]
    ) -> list[NodeConfig]:
        """Admit the local operators (one token each, fresh on every start) and give each
        node its operator's token."""
        regions: dict[str, set[str]] = {}
        computes: dict[str, bool] = {}
        for n in nodes:
            regions.setdefault(n.operator, set()).add(n.region)
            computes[n.operator] = computes.get(n.operator, False) or n.compute
        admin = AdminClient(self.coordinator_url, admin_token, session)
        tokens = {}
        for name, where in regions.items():
            admission = await admin.admit_operator(name, sorted(where), compute=computes[name])
            tokens[name] = admission.join_token
        return [msgspec.structs.replace(n, join_token=tokens[n.operator]) for n in nodes]

    def write_node_configs(self, nodes: Sequence[NodeConfig]) -> None:
        """Each node's config, readable by the owner only: it holds a join token."""
        for node in nodes:
            self._write(Path(node.data_dir) / "config.toml", config_to_toml(node))

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Owner-only, as every file of the home: configs hold tokens (admin_token, join tokens)."""
        write_private(path, text)

    # ------------------------------------------------------------ lifecycle

    def _child(self, name: str, role: str, config: Path) -> Child:
        c = Child(
            name,
            [role, "--config", str(config), "--log-level", self.spec.log_level],
            self.spec.home / "logs" / f"{name}.log",
        )
        self.children.append(c)
        c.start()
        return c

    async def start(self) -> None:
        s = self.spec
        if s.ha:
            # its database is a fresh formation each time: what the home held is stale
            shutil.rmtree(s.home, ignore_errors=True)
        private_dir(s.home)
        state = self._state()
        if s.tls:
            self.tls = ensure_local_tls(s.home / "tls", _tls_hosts(s.host))
        if s.ha:
            self.formation = _start_database(s)
        self.write_configs(state)
        # trusting only our CA is enough: every https URL here is one of our gateways
        trust = ssl.create_default_context(cafile=self.tls.ca) if self.tls else True
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            for i, url in enumerate(self.coordinator_urls):
                # one at a time: the first to start migrates the database
                config = _coordinator_home(s, i) / "config.toml"
                coord = self._child(_coordinator_name(i), "coordinator", config)
                await _wait_http(session, f"{url}/healthz", coord)
            nodes = await self.admit_operators(session, state.admin_token, self.node_configs())
            self.write_node_configs(nodes)
            for i in range(s.nodes):
                name = f"node-{i + 1:02d}"
                self._child(name, "node", s.home / "nodes" / name / "config.toml")
            await self._wait_nodes(session, state.admin_token, s.nodes)
            self.credential = await self._ensure_credentials(session, state)
            self.inference_key = await self._ensure_inference_key(session, state, self.credential)
            if _compute_on(s):  # packaged models become objects
                await _push_models(session, self.coordinator_url, state.admin_token, s)
            if s.distance:
                await self._region_gateways()
            for i, port in enumerate(s.gateway_ports):
                name = "gateway" if i == 0 else f"gateway-{i + 1}"
                gw = self._child(name, "gateway", _ha_gateway_home(s, i) / "config.toml")
                await _wait_http(session, f"{self._gateway_url(port)}/healthz", gw)
            for region, url in list(self.gateways.items())[1:]:
                gw = self._child(
                    f"gateway-{region}", "gateway", _gateway_home(s, region) / "config.toml"
                )
                await _wait_http(session, f"{url}/healthz", gw)
            if self.gateways:
                self._write(s.home / "run" / "gateways.json", json.dumps(self.gateways) + "\n")

    async def _region_gateways(self) -> None:
        """A gateway per region, each reaching compute nodes through delay proxies.

        The first region's gateway is the usual one (the S3 endpoint); the others
        listen on the ports after the last node's.
        """
        s = self.spec
        self.distance = Distance(s.rtt_matrix, s.host)
        sites = [
            NodeSite(s.regions[i % len(s.regions)], s.host, s.node_base_port + i)
            for i in range(s.nodes)
            if i < len(s.regions) and _compute_on(s) and _computes(s, s.regions[i])
        ]
        tls_cert, tls_key = self._gateway_tls()
        for j, region in enumerate(s.regions):
            port = s.gateway_port if j == 0 else s.node_base_port + s.nodes + j - 1
            home = s.home / "gateway" if j == 0 else _gateway_home(s, region)
            gw = GatewayConfig(
                data_dir=str(home),
                host=s.host,
                port=port,
                coordinator_url=self.coordinator_url,
                credentials_file=str(s.home / "gateway" / "credentials.toml"),
                node_routes=await self.distance.routes_from(region, sites),
                tls_cert=tls_cert,
                tls_key=tls_key,
            )
            self._write(home / "config.toml", config_to_toml(gw))
            self.gateways[region] = self._gateway_url(port)

    async def _wait_nodes(self, session: aiohttp.ClientSession, token: str, count: int) -> None:
        deadline = time.monotonic() + 60
        online = 0
        admin = AdminClient(self.coordinator_url, token, session)
        while time.monotonic() < deadline:
            try:
                online = await admin.online_count()
                if online >= count:
                    return
            except SkymeshError:
                pass
            dead = [c.name for c in self.children if not c.alive()]
            if dead:
                raise SkymeshError(f"{', '.join(dead)} exited; see {self.spec.home / 'logs'}")
            await asyncio.sleep(0.2)
        raise SkymeshError(f"only {online} of {count} nodes joined within 60 s")

    async def _ensure_credentials(
        self, session: aiohttp.ClientSession, state: NetworkState
    ) -> Credential:
        path = self.spec.home / "gateway" / "credentials.toml"
        existing = load_credentials(path)
        if existing:
            return existing[0]
        admin = AdminClient(self.coordinator_url, state.admin_token, session)
        try:
            cred = await admin.create_credential("default")
        except SkymeshError as e:
            raise SkymeshError(f"creating the default project failed: {e}") from e
        write_credentials(path, [cred], load_credentials_file(path).projects)
        state.project_id = cred.project_id
        state.access_key_id = cred.access_key_id
        self._save_state(state)
        return cred

    async def _ensure_inference_key(
        self, session: aiohttp.ClientSession, state: NetworkState, cred: Credential
    ) -> str:
        """The inference API key of the banner: the one made before while it is live, else
        a new one (the first start, or the old one was revoked)."""
        keys = InferenceKeys(self.coordinator_url, cred.api_key, session)
        if state.inference_key and await keys.is_live(state.inference_key):
            return state.inference_key
        try:
            state.inference_key = (await keys.create("skymesh up")).key
        except SkymeshError as e:
            raise SkymeshError(f"creating an inference API key failed: {e}") from e
        self._save_state(state)
        return state.inference_key

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the gateway first, then nodes, then the coordinator; kill what lingers."""
        for c in reversed(self.children):
            if c.alive():
                assert c.proc is not None
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for c in reversed(self.children):
            if c.proc is None:
                continue
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
            c.pid_path.unlink(missing_ok=True)
        (self.spec.home / "run" / "gateways.json").unlink(missing_ok=True)
        if self.formation is not None:
            self.formation.stop()
            self.formation = None

    def banner(self) -> str:
        assert self.credential is not None
        c = self.credential
        s = self.spec
        return f"""
skymesh is up: {s.nodes} nodes in {len(s.regions)} regions ({", ".join(s.regions)}).

  S3 endpoint        {self.endpoint}
  access key id      {c.access_key_id}
  secret access key  {c.secret_access_key}
  region             us-east-1
  inference API key  {self.inference_key}
{_tls_line(self)}  data and logs      {s.home}

  storage console    {self.endpoint}{console.TENANT_PATH}  (sign in with the key above)
  network console    {self.coordinator_url}{routes.CONSOLE_PATH}  (admin token: {s.home / "state.json"})

Use it with the AWS CLI:

  export AWS_ACCESS_KEY_ID={c.access_key_id}
  export AWS_SECRET_ACCESS_KEY={c.secret_access_key}
  export AWS_DEFAULT_REGION=us-east-1
{_tls_export(self)}  aws --endpoint-url {self.endpoint} s3 mb s3://demo
  aws --endpoint-url {self.endpoint} s3 cp ./some-file s3://demo/
  aws --endpoint-url {self.endpoint} s3 ls s3://demo/

More projects and keys, served at once (docs/operations.md §5l):

  skymesh project create NAME
  skymesh keys create --project NAME [--expires 30d]

The network at a glance: skymesh status --watch{_home_option(s)}
{_restart_line(self)}
{_openai_banner(self)}{_distance_banner(self)}{_ha_banner(self)}"""


def _home_option(spec: NetworkSpec) -> str:
    """``--home`` for commands run elsewhere than where ``up`` looks by default."""
    return "" if spec.home == home_dir() else f" --home {spec.home}"


def _coordinator_name(i: int) -> str:
    return "coordinator" if i == 0 else f"coordinator-{i + 1}"


def _coordinator_home(spec: NetworkSpec, i: int) -> Path:
    return spec.home / _coordinator_name(i)


def _ha_gateway_home(spec: NetworkSpec, i: int) -> Path:
    return spec.home / ("gateway" if i == 0 else f"gateway-{i + 1}")


def _start_database(spec: NetworkSpec) -> Formation:
    """PostgreSQL for ``--ha``: a monitor, a primary and a synchronous standby.

    Started from this (the main) thread: each server is told to stop when the thread
    that started it ends, and this one lives as long as ``up``.
    """
    from skymesh.network.pgcluster import TEST_SERVER_SETTINGS, FormationSpec, start_formation

    started = time.monotonic()
    print("starting PostgreSQL (pg_auto_failover: monitor, primary, standby)...", flush=True)
    formation = start_formation(
        FormationSpec(
            monitor_host=spec.host,
            node_hosts=(spec.host, spec.host),
            # small servers for one machine; fsync off: a killed process loses nothing
            server_settings=TEST_SERVER_SETTINGS,
        )
    )
    log.info("PostgreSQL formation in sync after %.1f s", time.monotonic() - started)
    return formation


def _as_pg_user() -> str:
    """pg_autoctl refuses to run as root: as root, say to run it as ``postgres``."""
    return "runuser -u postgres -- " if os.geteuid() == 0 else ""


def _restart_line(net: Network) -> str:
    if net.spec.ha:
        return "Press Ctrl-C to stop; an HA network starts afresh each time (its database too)."
    return "Press Ctrl-C to stop; starting again serves the same objects."


def _pid(net: Network, name: str) -> str:
    child = next((c for c in net.children if c.name == name), None)
    return str(child.proc.pid) if child is not None and child.proc is not None else "?"


def _ha_banner(net: Network) -> str:
    """Each part of an HA network, how to kill it, and what to expect."""
    f = net.formation
    if f is None:
        return ""
    s = net.spec
    primary = f.primary()
    standby = next((n for n in f.nodes if n is not primary), None)
    gateways = [net._gateway_url(p) for p in s.gateway_ports]
    lines = [
        "",
        "Highly available: kill any one part, the network goes on (docs/operations.md).",
        "",
        f"  coordinators  {', '.join(net.coordinator_urls)}",
        f"  gateways      {', '.join(gateways)}  (the same projects and keys)",
        f"  PostgreSQL    {f.url()}",
        "",
        f"  kill -9 {_pid(net, 'coordinator')}    # coordinator 1: the other answers every call;",
        "                   # its background loops move within 15 s"
        f" (GET {net.coordinator_urls[-1]}/v1/admin/leases)",
        f"  kill -9 {_pid(net, 'gateway')}    # gateway 1: use {gateways[-1]}",
    ]
    if primary is not None:
        lines += [
            f"  kill -9 $(head -1 {primary.pgdata}/postmaster.pid)    # the PostgreSQL primary:",
            f"                   # {standby.name if standby else 'the standby'} is promoted within"
            " seconds; coordinators reconnect by themselves",
            f"  {_as_pg_user()}pg_autoctl show state --monitor '{f.monitor_uri}'"
            "    # which is primary now",
        ]
    lines.append(f"  logs: {s.home / 'logs'}, PostgreSQL's: {f.root / 'logs'}")
    return "\n".join(lines) + "\n"


def _tls_hosts(host: str) -> list[str]:
    """What the gateway certificate names: loopback by address and name, and ``host``."""
    hosts = ["127.0.0.1", "localhost"]
    if host not in (*hosts, "0.0.0.0", "::", ""):
        hosts.append(host)
    return hosts


def _tls_line(net: Network) -> str:
    return f"  CA certificate     {net.tls.ca}\n" if net.tls else ""


def _tls_export(net: Network) -> str:
    """How clients trust the local CA: boto3 and the AWS CLI read AWS_CA_BUNDLE."""
    if net.tls is None:
        return ""
    return f"  export AWS_CA_BUNDLE={net.tls.ca}   # or: aws --ca-bundle {net.tls.ca} ...\n"


# ---------------------------------------------------------------- models, compute nodes


def _compute_on(spec: NetworkSpec) -> bool:
    from skymesh.compute.catalog import packaged_models

    return spec.compute and bool(packaged_models())


def _computes(spec: NetworkSpec, region: str) -> bool:
    """Whether ``region``'s first node is a compute node (when compute is on at all)."""
    return not spec.compute_regions or region in spec.compute_regions


def _openai_banner(net: Network) -> str:
    if not _compute_on(net.spec):
        return ""
    return (
        f"\nOpenAI-compatible API (docs/inference.md): base URL {net.endpoint}/v1, API key:"
        f" the inference API key above. Models: GET {net.endpoint}/v1/models\n"
    )


def _models_credentials(spec: NetworkSpec) -> Path:
    return spec.home / "models" / "credentials.toml"


async def _push_models(
    session: aiohttp.ClientSession, url: str, admin_token: str, spec: NetworkSpec
) -> None:
    """Store the packaged models in their own project; compute nodes fetch them from there."""
    from skymesh.client.client import Client
    from skymesh.compute.store import models_credential, push_packaged

    started = time.monotonic()
    c = await models_credential(session, url, admin_token, _models_credentials(spec))
    secret = bytes.fromhex(c.encryption_secret)
    async with Client.for_project(url, c.api_key, c.project_id, secret, session=session) as client:
        pushed = await push_packaged(client)
    log.info(
        "models in the network: %s (%.1f s)",
        ", ".join(f"{n} ({'pushed' if p else 'present'})" for n, p in pushed),
        time.monotonic() - started,
    )


def _gateway_home(spec: NetworkSpec, region: str) -> Path:
    return spec.home / "gateways" / region


def _distance_banner(net: Network) -> str:
    """Each region's gateway, when ``--distance`` gave every region its own."""
    if not net.gateways:
        return ""
    m = net.spec.rtt_matrix
    first = next(iter(net.gateways))
    lines = ["", "Simulated distance: a gateway per region; callers in a region use its gateway."]
    for region, url in net.gateways.items():
        rtts = ", ".join(f"{r} {m.ms(region, r):g}" for r in net.spec.regions if r != region)
        note = " (the S3 endpoint)" if region == first else ""
        lines.append(f"  gateway {region:<12} {url}{note}  RTT ms: {rtts}")
    return "\n".join(lines) + "\n"


async def _wait_http(
    session: aiohttp.ClientSession, url: str, child: Child, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise SkymeshError(f"{child.name} exited during start; see {child.log_path}")
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SkymeshError(f"{child.name} did not answer {url} within {timeout:.0f} s")


async def run_network(spec: NetworkSpec, ready: asyncio.Event | None = None) -> None:
    """Start the network, print how to use it, and run until SIGINT or SIGTERM."""
    if spec.nodes < 2:
        raise ConfigError("a network needs at least 2 nodes")
    unknown = set(spec.compute_regions) - set(spec.regions)
    if unknown:
        raise ConfigError(f"compute regions {sorted(unknown)} are not among {list(spec.regions)}")
    if spec.distance:
        spec.rtt_matrix.check_covers(spec.regions)
    net = Network(spec)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await net.start()
        print(net.banner(), flush=True)
        if ready is not None:
            ready.set()
        reported: set[str] = set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            for c in net.children:
                if not c.alive() and c.name not in reported:
                    reported.add(c.name)
                    code = c.proc.returncode if c.proc else None
                    print(f"{c.name} exited (code {code}); see {c.log_path}", flush=True)
    finally:
        print("stopping skymesh...", flush=True)
        await asyncio.to_thread(net.stop)
        if net.distance is not None:
            await net.distance.close()
        print("stopped.", flush=True)
