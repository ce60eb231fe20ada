"""The network over separate hosts: each role on its host's address, S3 from the client host.

What this proves that the loopback tiers cannot: no role listens on, or calls,
127.0.0.1 when it runs on a host of its own, and no role reads another's files.
The chaos cases follow in ``test_hosts_chaos.py``, on the same network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import sys
from pathlib import Path

import pytest

from skymesh.config import LOCAL_NETWORKS
from tests.hosts.cluster import CLIENT, CONTROL, Cluster
from tests.process.netutil import find_tool

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

S3OPS = str(Path(__file__).with_name("s3ops.py"))
MiB = 1024 * 1024
# How long the chaos test keeps a region's host off the bridge: a minute in CI.
CUT_SECONDS = float(os.environ.get("SKYMESH_HOSTS_CUT_SECONDS", "60"))


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
    pids = {r.proc.pid for r in cluster.roles.values() if r.proc is not None}
    for host in {*(r.host for r in cluster.roles.values()), CLIENT}:
        # nothing but our roles listens on their hosts (the database has hosts of its own)
        assert {p for _, _, p in _listening(cluster, host)} <= pids


def test_configs_name_only_their_own_folder(cluster: Cluster) -> None:
    """No role is pointed at another's files: every path in a config is under its folder."""
    for name, role in cluster.roles.items():
        section = next(iter(cluster.config_of(name).values()))
        paths = [v for v in section.values() if isinstance(v, str) and v.startswith("/")]
        assert paths, name
        for value in paths:
            assert Path(value).is_relative_to(role.folder), f"{name}: {value}"


def test_no_role_holds_another_roles_files_open(cluster: Cluster) -> None:
    """A snapshot of each role's open files under the network's folder: its own only."""
    for name, role in cluster.roles.items():
        assert role.proc is not None
        fds = Path(f"/proc/{role.proc.pid}/fd")
        opened = []
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):  # closed since the listing
                opened.append(Path(os.readlink(fd)))
        ours = [p for p in opened if p.is_relative_to(cluster.root)]
        assert ours, f"{name} holds nothing open under {cluster.root} (not even its log)"
        for path in ours:
            assert path.is_relative_to(role.folder) or path == role.log, f"{name}: {path}"


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


def _aws(c: Cluster, *args: str, timeout: float = 120) -> str:
    """The AWS CLI (Debian's v2) on the client host; its stdout, after asserting success."""
    exe = find_tool("aws", "awscli")
    out = c.net.run(
        CLIENT, [exe, "--endpoint-url", c.endpoint, *args], env=c.s3_env(), timeout=timeout
    )
    return out.stdout


def test_aws_cli_from_the_client_host(cluster: Cluster) -> None:
    """`aws s3 cp` up and down (12 MiB: the CLI's multipart) and `aws s3 ls`, byte-exact."""
    folder = cluster.folder(CLIENT, "aws")
    folder.mkdir(parents=True)
    files = {
        "small.txt": b"hello from the client host\n",
        "big.bin": random.Random(3).randbytes(12 * MiB),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    _aws(cluster, "s3", "mb", "s3://aws-cli")
    for name in files:
        _aws(cluster, "s3", "cp", str(folder / name), f"s3://aws-cli/dir/{name}")
    listed = _aws(cluster, "s3", "ls", "s3://aws-cli/dir/")
    sizes = {line.split()[-1]: int(line.split()[-2]) for line in listed.splitlines()}
    assert sizes == {name: len(data) for name, data in files.items()}
    for name, data in files.items():
        _aws(cluster, "s3", "cp", f"s3://aws-cli/dir/{name}", str(folder / f"back-{name}"))
        assert (folder / f"back-{name}").read_bytes() == data, name


def test_boto3_from_the_client_host(cluster: Cluster) -> None:
    """Every object shape, a multipart upload and a ranged read, byte-exact."""
    out = cluster.net.run(
        CLIENT, [sys.executable, S3OPS, "roundtrip", "boto3"], env=cluster.s3_env(), check=False
    )
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert json.loads(out.stdout)["objects"] >= 5
