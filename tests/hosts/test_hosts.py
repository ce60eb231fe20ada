"""The network over separate hosts: each role on its host's address, S3 from the client host.

What this proves that the loopback tiers cannot: no role listens on, or calls,
127.0.0.1 when it runs on a host of its own, and no role reads another's files.
The chaos case (a region's host cut off the bridge under load) is the last test,
and leaves the network whole.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import pytest

from skymesh.config import LOCAL_NETWORKS
from tests.hosts.cluster import CLIENT, CONTROL, Cluster, clean_env

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

S3OPS = str(Path(__file__).with_name("s3ops.py"))
MiB = 1024 * 1024
# How long the chaos test keeps a region's host off the bridge: a minute in CI.
CUT_SECONDS = float(os.environ.get("SKYMESH_HOSTS_CUT_SECONDS", "60"))


def _s3_env(c: Cluster, **extra: str) -> dict[str, str]:
    """The S3 clients' environment on the client host: our keys only, no config files."""
    return clean_env(
        S3_ENDPOINT=c.endpoint,
        AWS_ACCESS_KEY_ID=c.access_key,
        AWS_SECRET_ACCESS_KEY=c.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        **extra,
    )


def _listening(c: Cluster, host: str) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket on ``host``."""
    out = c.net.run(host, ["ss", "-ltnpH"]).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        for pid in re.findall(r"pid=(\d+)", line):
            found.append((address.strip("[]"), int(port), int(pid)))
    return found


def test_every_role_listens_on_its_hosts_address_only(cluster: Cluster) -> None:
    for name, role in cluster.roles.items():
        assert role.proc is not None
        sockets = [s for s in _listening(cluster, role.host) if s[2] == role.proc.pid]
        address = cluster.net.address(role.host)
        assert sockets, f"{name} listens on nothing"
        assert {a for a, _, _ in sockets} == {address}, f"{name} listens on {sockets}"
    for host in (CONTROL, CLIENT):  # nothing but our roles listens anywhere
        pids = {r.proc.pid for r in cluster.roles.values() if r.proc is not None}
        assert {p for _, _, p in _listening(cluster, host)} <= pids


def test_configs_name_only_their_own_folder(cluster: Cluster) -> None:
    """No role is pointed at another's files: every path in a config is under its folder."""
    for name, role in cluster.roles.items():
        section = next(iter(cluster.config_of(name).values()))
        paths = [v for v in section.values() if isinstance(v, str) and v.startswith("/")]
        assert paths, name
        for value in paths:
            assert Path(value).is_relative_to(role.folder), f"{name}: {value}"


def test_nodes_on_private_addresses_are_admitted_by_default(cluster: Cluster) -> None:
    """The coordinator's default node_networks admits the hosts' 10.x addresses."""
    # the config holds the default (config_to_toml writes every field); the effective
    # config, environment included, admits 10.0.0.0/8
    assert cluster.config_of("coordinator")["coordinator"]["node_networks"] == list(LOCAL_NETWORKS)
    config = str(cluster.roles["coordinator"].config)
    shown = cluster.skymesh(CONTROL, "config", "show", "coordinator", "--config", config)
    assert '"10.0.0.0/8"' in shown
    nodes = cluster.nodes()
    assert len(nodes) == len(cluster.layout.nodes())
    for node in nodes:
        host = node["address"].removeprefix("http://").rpartition(":")[0]
        assert ipaddress.ip_address(host) in cluster.net.subnet, node
        assert cluster.net.address(node["region"]) == host, node
