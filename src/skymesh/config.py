"""Typed, frozen configuration for each role.

Each role reads one section of a TOML file (``[node]``, ``[coordinator]``,
``[gateway]``), then environment variables ``SKYMESH_<ROLE>_<FIELD>`` (upper case),
then explicit overrides (command-line flags), later ones winning. Unknown keys
are an error, so a typo does not silently fall back to a default.
``skymesh config show`` prints the result.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from skymesh.errors import ConfigError
from skymesh.private import write_private

MiB = 1024 * 1024
GiB = 1024 * MiB

#: Where node addresses may be by default: loopback and the private ranges.
LOCAL_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class NodeConfig(_Config, frozen=True):
    """A provider node: stores pieces on local disk, serves them against signed orders."""

    data_dir: str = ".skymesh/node"
    host: str = "127.0.0.1"
    port: int = 7800  # 0: any free port
    public_address: str = ""  # base URL others use; default http://host:port
    region: str = "local"
    operator: str = "local"  # informational: the coordinator records the join token's
    # the join token the network's administrator issued this node's operator
    # (`skymesh operator add`): needed to register; once registered, a node rejoins
    # without a valid one until its operator is revoked. Environment:
    # SKYMESH_NODE_JOIN_TOKEN; command line: `skymesh node --join-token`.
    join_token: str = ""
    capacity_bytes: int = 100 * GiB
    coordinator_url: str = "http://127.0.0.1:7700"
    # several coordinators over one database (wins over coordinator_url when set): joins
    # and heartbeats are spread over them and fail over (docs/operations.md). Environment:
    # SKYMESH_NODE_COORDINATOR_URLS="http://c1:7700,http://c2:7700"; `skymesh node
    # --coordinator URL` (repeatable).
    coordinator_urls: list[str] = []
    # hex Ed25519 public keys of coordinators whose orders we honour at first; empty:
    # pin the key of coordinator_url on first join (trust on first use). Either way the
    # node then follows the network's key statements (node/trust.py), kept in its
    # data_dir's trusted_coordinators file, which wins over this list once written.
    trusted_coordinators: list[str] = []
    heartbeat_interval: float = 5.0
    fsync: bool = True
    # inference (docs/inference.md)
    compute: bool = False  # serve inference (`skymesh node --compute`)
    compute_models: list[str] = []  # model names served; empty: every packaged model
    compute_concurrency: int = 1  # requests run at once
    compute_queue: int = 8  # requests that may wait; more are refused with 429
    compute_threads: int = 0  # threads per request inside the runtime; 0: its default
    price_in: float = 0.0  # USD per million input tokens
    price_out: float = 0.0  # USD per million output tokens
    # energy (docs/operations.md "Energy"): declared at join, used to route inference,
    # to weight placement for buckets that prefer low carbon, and to estimate kWh and
    # gCO2 in the accounting rollups
    pue: float = 1.2  # power usage effectiveness of the data centre (>= 1)
    grid_gco2_kwh: float = 300.0  # carbon intensity of the grid where the node runs
    watts: float = 0.0  # power drawn while serving inference; 0: 10 W per core
    # power drawn per TB of capacity while storing (disks, their share of the host);
    # 2 W/TB is a small host with a few hard disks, a dense disk shelf is nearer 0.5-1
    storage_watts_per_tb: float = 2.0
    # models from the network: a credentials TOML (as the gateway's) of the project
    # holding them; empty: only the packaged models, from the installed ai extra
    model_credentials: str = ""
    model_bucket: str = "models"
    model_cache_bytes: int = 4 * GiB  # least recently used models are evicted past this
    # Prometheus metrics (docs/operations.md "Metrics"): "host:port" of a listener of
    # their own serving GET /metrics to anyone who reaches it, so keep it on loopback or
    # a monitoring network; port 0 picks a free one. Empty: no metrics listener.
    metrics_address: str = ""

    def __post_init__(self) -> None:
        if self.metrics_address:
            host_port(self.metrics_address, "node metrics_address")
        energy = (self.pue, self.grid_gco2_kwh, self.watts, self.storage_watts_per_tb)
        if not all(math.isfinite(v) and v >= 0 for v in energy) or self.pue < 1:
            raise ConfigError(
                "node pue must be >= 1, and grid_gco2_kwh, watts and storage_watts_per_tb"
                " finite and >= 0"
            )

    @property
    def coordinators(self) -> list[str]:
        """Every coordinator URL: ``coordinator_urls``, else ``coordinator_url``."""
        return list(self.coordinator_urls) or [self.coordinator_url]


class CoordinatorConfig(_Config, frozen=True):
    """The control plane: registry, placement, metadata, orders."""

    data_dir: str = ".skymesh/coordinator"
    host: str = "127.0.0.1"
    port: int = 7700
    database_url: str = ""  # default: SQLite file in data_dir
    admin_token: str = ""  # required for project and node administration
    heartbeat_interval: float = 5.0
    offline_after: float = 20.0  # seconds without heartbeat before a node is offline
    order_ttl: float = 3600.0
    max_segment_size: int = 64 * MiB
    inline_threshold: int = 4096
    block_size: int = 64 * 1024 - 16  # plaintext per AES-GCM block: stripes of 64 KiB
    scheme: str = ""  # "k/repair/optimal/total"; empty: chosen from the network's size
    pending_upload_ttl: float = 7 * 24 * 3600.0
    # garbage collection and reconciliation
    gc_grace: float = 24 * 3600.0  # seconds a queued garbage piece waits before deletion
    gc_interval: float = 600.0  # seconds between garbage collector runs
    retain_interval: float = 24 * 3600.0  # seconds between reconciliation rounds (0: off)
    retain_grace: float = 24 * 3600.0  # nodes keep unreferenced pieces younger than this
    # audits, reputation, repair
    audit_interval: float = 30.0  # seconds between audit rounds
    audits_per_round: int = 4  # online nodes audited per round (one random chunk each)
    audit_timeout: float = 10.0  # seconds a node has to answer; longer counts as unknown
    audit_lambda: float = 0.999  # forgetting factor of the audit score
    audit_dq_threshold: float = 0.96  # disqualified below this audit score
    unknown_lambda: float = 0.95  # forgetting factor of the offline/timeout score
    unknown_suspend_threshold: float = 0.6  # no new pieces below this unknown score
    vetting_audits: int = 10  # successful audits before a node is vetted
    new_node_fraction: float = 0.05  # most of a placement that may go to unvetted nodes
    repair_check_interval: float = 60.0  # seconds between repair checker scans
    repair_interval: float = 5.0  # seconds between repair worker runs when idle
    repair_retry_after: float = 300.0  # a failed repair is retried after this long
    # residency and audit containment (docs/operations.md)
    # Location constraint groups: {"eu": ["eu-west", "eu-central"]}. A constraint not
    # named here covers the region of that name and every "<name>-*" region.
    # Environment: SKYMESH_COORDINATOR_JURISDICTIONS="eu=eu-west,eu-central;us=us-east"
    jurisdictions: dict[str, list[str]] = {}
    # A node that times out on an audit is asked for the same chunk again; after this
    # many unanswered re-asks the audit counts as failed.
    audit_contained_retries: int = 3
    # Between full scans of every segment, a repair checker round judges only segments
    # on nodes whose state changed (and new ones). 0: every round is a full scan.
    repair_full_scan_interval: float = 600.0
    # admission (docs/operations.md "Operator admission")
    # Networks (CIDR) a node's address must resolve into; empty: any address (but never
    # an unspecified or multicast one). The default admits a local network: loopback
    # and the private ranges, not link-local (where cloud metadata services answer).
    # Environment: SKYMESH_COORDINATOR_NODE_NETWORKS="10.0.0.0/8,192.168.0.0/16"
    node_networks: list[str] = msgspec.field(default_factory=lambda: list(LOCAL_NETWORKS))
    # Unvetted nodes that never stored anything are forgotten once unseen this long
    # (seconds; 0: never). The `expire-nodes` loop checks every hour at most.
    stale_node_after: float = 7 * 24 * 3600.0
    # compute admission and spot checks (docs/inference.md "Trust")
    # A node of a compute-admitted operator serves inference once its storage audits
    # record this many successes (its vetting); 0: at once (`skymesh up`, the test planet).
    compute_vetting_audits: int = 10
    compute_lambda: float = 0.95  # forgetting factor of the compute score (spot checks)
    # a node is excluded from compute when its compute score is below this threshold
    # and nodes of compute_exclude_operators distinct other operators contradict it
    compute_exclude_threshold: float = 0.8
    compute_exclude_operators: int = 2
    compute_check_window: float = 7 * 24 * 3600.0  # seconds spot checks count as evidence
    # several coordinators on one database (docs/operations.md "Several coordinators")
    # Seconds a coordinator holds a background loop's lease without renewing it (it
    # renews every third of this). A dead holder's loops move to another coordinator
    # within 4/3 of it; clocks of coordinators must agree within a third of it.
    lease_ttl: float = 10.0
    # S3 bucket lifecycle (docs/s3-compatibility.md "Lifecycle"): the length of the
    # rules' "day" in seconds. The `lifecycle-rules` loop runs once a day, just after
    # each day boundary (midnight UTC for real days); tests shorten it.
    lifecycle_day_seconds: float = 86400.0
    # accounting and payouts (docs/operations.md "Accounting and payouts")
    accounting_interval: float = 300.0  # seconds between tallies of the hourly rollups
    price_storage_gb_month: float = 0.0015  # USD an operator earns per GB-month stored
    price_egress_gb: float = 0.002  # USD per GB served to clients and to repair
    price_compute_1k_tokens: float = 0.0005  # USD per 1000 inference tokens served
    # Percent of a node's pay held back in its 1st, 2nd, ... month since it joined
    # (none after the list). Environment: SKYMESH_COORDINATOR_PAYOUT_HOLDBACK="75,50,25"
    payout_holdback: list[float] = msgspec.field(
        default_factory=lambda: [75.0, 75.0, 75.0, 50.0, 50.0, 50.0, 25.0, 25.0, 25.0]
    )

    def __post_init__(self) -> None:
        if self.lease_ttl <= 0:
            raise ConfigError("coordinator lease_ttl must be positive")
        if self.lifecycle_day_seconds <= 0:
            raise ConfigError("coordinator lifecycle_day_seconds must be positive")
        if self.accounting_interval <= 0:
            raise ConfigError("coordinator accounting_interval must be positive")
        prices = (self.price_storage_gb_month, self.price_egress_gb, self.price_compute_1k_tokens)
        if not all(math.isfinite(p) and p >= 0 for p in prices):
            raise ConfigError("coordinator prices must be finite and >= 0")
        if not all(0 <= p <= 100 for p in self.payout_holdback):
            raise ConfigError("coordinator payout_holdback: each percent must be in 0..100")
        if self.compute_vetting_audits < 0 or self.compute_exclude_operators < 1:
            raise ConfigError(
                "coordinator compute_vetting_audits must be >= 0 and compute_exclude_operators >= 1"
            )
        if not (0 < self.compute_lambda < 1 and 0 <= self.compute_exclude_threshold <= 1):
            raise ConfigError(
                "coordinator compute_lambda must be in (0, 1) and compute_exclude_threshold"
                " in [0, 1]"
            )
        if self.compute_check_window <= 0:
            raise ConfigError("coordinator compute_check_window must be positive")
        for network in self.node_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as e:
                raise ConfigError(
                    f"coordinator node_networks: {network!r} is not a network (CIDR): {e}"
                ) from e


class GatewayConfig(_Config, frozen=True):
    """The S3 face next to the user: holds keys, encrypts, moves pieces to nodes."""

    data_dir: str = ".skymesh/gateway"
    host: str = "127.0.0.1"
    port: int = 9000
    coordinator_url: str = "http://127.0.0.1:7700"
    # several coordinators over one database (wins over coordinator_url when set): calls
    # are spread over them and fail over (docs/operations.md). Environment:
    # SKYMESH_GATEWAY_COORDINATOR_URLS="http://c1:7700,http://c2:7700"; `skymesh gateway
    # --coordinator URL` (repeatable).
    coordinator_urls: list[str] = []
    # seconds one attempt of a coordinator call may take before the next coordinator is
    # asked (or, when the call may not be repeated, the client is answered 503)
    coordinator_timeout: float = 30.0
    s3_region: str = "us-east-1"
    credentials_file: str = ""  # default: data_dir/credentials.toml
    # every this many seconds the gateway reads its credentials file again if it changed
    # (a project added by `skymesh project create`) and asks the coordinator for each
    # project's access keys: one issued since serves, one revoked or expired since is
    # refused (`skymesh keys`, docs/operations.md "Projects and keys"). 0: never.
    key_refresh_interval: float = 2.0
    max_clock_skew: float = 15 * 60.0
    # AWS Signature Version 2 (`Authorization: AWS key:signature` and presigned URLs with
    # AWSAccessKeyId/Expires/Signature, which the AWS CLI v1 and old tools make). It
    # signs neither the body nor the query parameters that are not sub-resources
    # (docs/security.md); false answers such requests 403 AccessDenied.
    sigv2: bool = True
    download_extra_pieces: int = 2  # start downloads on k + this many nodes
    # virtual-hosted-style S3: a request to bucket.<suffix> names the bucket in its Host
    virtual_host_suffixes: list[str] = []
    # HTTPS on `port` instead of HTTP: PEM certificate (chain) and private key, both or
    # neither. Over HTTPS S3 clients send unsigned, CRC-checked bodies instead of
    # SHA-256-signing each one. `skymesh up --tls` makes a local CA and both files.
    tls_cert: str = ""
    tls_key: str = ""
    # SSE-C (customer-provided keys) over plain HTTP: S3 refuses it (the key would
    # cross the network in clear), and so do we unless this is true, for a gateway
    # reached only over a trusted local network or loopback (docs/operations.md)
    sse_c_over_http: bool = False
    # compute node URL -> the URL this gateway reaches it by (a delay proxy in between):
    # how a gateway in one simulated region sees nodes in the others (`skymesh up
    # --distance`, docs/inference.md). Empty: as advertised.
    node_routes: dict[str, str] = {}
    # the OpenAI-compatible API's bearer keys (docs/inference.md): a project's inference
    # API keys, checked with the coordinator and trusted for inference_key_ttl seconds
    # (a revoked key stops working within that long). openai_accept_s3_secret also
    # takes a project's S3 secret access key, as gateways did before inference keys.
    inference_key_ttl: float = 5.0
    openai_accept_s3_secret: bool = False
    # resource limits: uploads of every access key share one budget of segment buffers
    # (up to two segments, 64 MiB each, per upload); a request that cannot get its
    # buffers within buffer_wait seconds is answered 503 SlowDown
    buffer_budget_bytes: int = 1 * GiB
    buffer_wait: float = 2.0
    # owner lookups of buckets named by anonymous and CORS requests (gateway/s3/public.py):
    # searches started per second (and the burst) and at once; past them, 503 SlowDown
    bucket_lookups_per_second: float = 50.0
    bucket_lookups_in_flight: int = 16
    # spot-check inference (docs/inference.md "Spot checks"): this fraction of eligible
    # requests (embeddings; chats at temperature 0) is run again, after the answer, on a
    # node of another operator, and the two answers compared: embeddings agree when
    # every vector's cosine similarity is at least spot_check_cosine, chats when their
    # first spot_check_chat_tokens streamed tokens are the same. 0 turns checks off.
    spot_check_fraction: float = 0.01
    spot_check_cosine: float = 0.99
    spot_check_chat_tokens: int = 32
    # Prometheus metrics (docs/operations.md "Metrics"): "host:port" of a listener of
    # their own serving GET /metrics to anyone who reaches it (not the S3 port, where
    # /metrics is a bucket's path), so keep it on loopback or a monitoring network;
    # port 0 picks a free one. Empty: no metrics listener.
    metrics_address: str = ""

    @property
    def coordinators(self) -> list[str]:
        """Every coordinator URL: ``coordinator_urls``, else ``coordinator_url``."""
        return list(self.coordinator_urls) or [self.coordinator_url]

    def __post_init__(self) -> None:
        if self.metrics_address:
            host_port(self.metrics_address, "gateway metrics_address")
        if self.coordinator_timeout <= 0:
            raise ConfigError("gateway coordinator_timeout must be positive")
        if not 0.0 <= self.spot_check_fraction <= 1.0:
            raise ConfigError(
                f"gateway spot_check_fraction must be in [0, 1], not {self.spot_check_fraction}"
            )
        if not -1.0 <= self.spot_check_cosine <= 1.0 or self.spot_check_chat_tokens < 1:
            raise ConfigError(
                "gateway spot_check_cosine must be in [-1, 1] and spot_check_chat_tokens >= 1"
            )
        for name in (
            "buffer_budget_bytes",
            "bucket_lookups_per_second",
            "bucket_lookups_in_flight",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"gateway {name} must be positive, not {getattr(self, name)}")
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            raise ConfigError(
                f"gateway {given} is set but {missing} is not: HTTPS needs both PEM files"
                f" (SKYMESH_GATEWAY_{missing.upper()} or {missing} in [gateway]);"
                " set neither for plain HTTP"
            )


def host_port(address: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); ConfigError naming ``what``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{what}: expected host:port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as e:
            raise ConfigError(f"{what}: {address!r} has a bad IPv6 address") from e
    elif ":" in host:
        raise ConfigError(f"{what}: write an IPv6 address in brackets, as [::1]:9464")
    return host, int(port)


C = TypeVar("C", bound=_Config)

SECTIONS: dict[type[_Config], str] = {
    NodeConfig: "node",
    CoordinatorConfig: "coordinator",
    GatewayConfig: "gateway",
}


def _env_values(kind: type[_Config], environ: dict[str, str]) -> dict[str, Any]:
    prefix = f"SKYMESH_{SECTIONS[kind].upper()}_"
    fields = {f.upper(): f for f in kind.__struct_fields__}
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        field = fields.get(name[len(prefix) :])
        if field is None:
            raise ConfigError(f"unknown setting {name}; known: {', '.join(sorted(fields))}")
        if field in (
            "trusted_coordinators",
            "compute_models",
            "node_networks",
            "coordinator_urls",
            "payout_holdback",
        ):
            out[field] = [v for v in value.replace(",", " ").split() if v]
        elif field == "jurisdictions":  # residency groups
            out[field] = _parse_groups(name, value)
        else:
            out[field] = value
    return out


def _parse_groups(name: str, value: str) -> dict[str, list[str]]:
    """``eu=eu-west,eu-central;us=us-east`` -> ``{"eu": [...], "us": [...]}``."""
    groups: dict[str, list[str]] = {}
    for entry in (e.strip() for e in value.split(";")):
        if not entry:
            continue
        group, sep, regions = entry.partition("=")
        if not sep or not group.strip():
            raise ConfigError(f"{name}: expected 'group=region,region;group=region', got {entry!r}")
        groups[group.strip()] = [r for r in regions.replace(",", " ").split() if r]
    return groups


def load_config(
    kind: type[C],
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> C:
    """Build ``kind`` from TOML file section, environment and overrides (in that order)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        section = doc.get(SECTIONS[kind], {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{SECTIONS[kind]}] in {path} must be a table")
        values.update(section)
    values.update(_env_values(kind, dict(os.environ if environ is None else environ)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(f"invalid {SECTIONS[kind]} config: {e}") from e


def config_to_toml(config: _Config) -> str:
    """The config as a TOML section, for ``skymesh config show`` and generated files."""
    lines = [f"[{SECTIONS[type(config)]}]"]
    for name in config.__struct_fields__:
        lines.append(f"{name} = {_toml_value(getattr(config, name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted, as any text may be a key
        items = (f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Credential(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One S3 access key the gateway accepts, and what it acts with.

    The secret access key and the project's encryption secret stay with the
    gateway: the coordinator knows the project by its API key only, so it can
    neither sign S3 requests nor decrypt anything.
    """

    access_key_id: str
    secret_access_key: str
    project_id: str
    api_key: str  # the project's coordinator API key
    encryption_secret: str  # hex; bucket keys derive from it, shared by the project's keys


class ProjectSecret(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A project a gateway serves: what it needs to act for the project, with no access
    key of its own here. The gateway serves the access keys the coordinator lists for
    the project, their secrets derived from ``encryption_secret`` (``access_secret``)."""

    project_id: str
    name: str = ""
    api_key: str  # the project's coordinator API key
    encryption_secret: str  # hex: the project's root secret, which the coordinator never sees

    @classmethod
    def of(cls, c: Credential) -> ProjectSecret:
        return cls(
            project_id=c.project_id, api_key=c.api_key, encryption_secret=c.encryption_secret
        )


class CredentialsFile(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway's credentials TOML: ``[[credentials]]`` (an access key with its secret
    and its project's) and ``[[projects]]`` (a project's secrets, its keys issued by the
    coordinator: `skymesh project create`, `skymesh keys create`)."""

    credentials: list[Credential] = []
    projects: list[ProjectSecret] = []

    def project_secrets(self) -> dict[str, ProjectSecret]:
        """Every project the file lets a gateway serve, by id ([[projects]] win)."""
        found = {c.project_id: ProjectSecret.of(c) for c in self.credentials}
        found.update((p.project_id, p) for p in self.projects)
        return found


def load_credentials_file(path: Path) -> CredentialsFile:
    """The file at ``path``, empty if there is none."""
    try:
        doc = tomllib.loads(Path(path).read_text())
        return msgspec.convert(doc, CredentialsFile)
    except FileNotFoundError:
        return CredentialsFile()
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as e:
        raise ConfigError(f"cannot read credentials {path}: {e}") from e


def load_credentials(path: Path) -> list[Credential]:
    return load_credentials_file(path).credentials


def write_credentials(
    path: Path, credentials: list[Credential], projects: Sequence[ProjectSecret] = ()
) -> None:
    """Write credentials readable by the owner only."""
    lines: list[str] = []
    for table, entries in (("credentials", credentials), ("projects", projects)):
        for c in entries:
            lines.append(f"[[{table}]]")
            for name in c.__struct_fields__:
                lines.append(f"{name} = {_toml_value(getattr(c, name))}")
            lines.append("")
    write_private(path, "\n".join(lines))
