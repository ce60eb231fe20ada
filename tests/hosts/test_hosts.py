"""The network over separate hosts: each role on its host's address, S3 from the client host.

What this proves that the loopback tiers cannot: no role listens on, or calls,
127.0.0.1 when it runs on a host of its own, and no role reads another's files.
The chaos case (a region's host cut off the bridge under load) is the last test,
and leaves the network whole.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skymesh.config import LOCAL_NETWORKS
from tests.hosts.cluster import CLIENT, CONTROL, Cluster, clean_env
from tests.process.netutil import find_tool, short_of_optimal

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
        CLIENT, [exe, "--endpoint-url", c.endpoint, *args], env=_s3_env(c), timeout=timeout
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
        CLIENT, [sys.executable, S3OPS, "roundtrip", "boto3"], env=_s3_env(cluster), check=False
    )
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert json.loads(out.stdout)["objects"] >= 5


# ---------------------------------------------------------------- chaos: a region cut off


def _wait(what: str, check: Callable[[], object], timeout: float, poll: float = 1.0) -> float:
    """Until ``check()`` returns a falsy problem; seconds taken. Fails showing the last one."""
    started = time.monotonic()
    while problem := check():
        assert time.monotonic() - started < timeout, f"{what} after {timeout:.0f} s: {problem}"
        time.sleep(poll)
    return time.monotonic() - started


def _not_clean(c: Cluster) -> object:
    """What keeps `skymesh durability` from clean: lost segments, or any under optimal."""
    report = c.durability()
    if report["lost_total"]:
        return f"{report['lost_total']} segments lost: {report['lost']}"
    return short_of_optimal(report)


def _entries(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def _log_count(c: Cluster, name: str, text: str) -> int:
    return c.roles[name].log.read_text(errors="replace").count(text)


def _online(c: Cluster, names: list[str]) -> dict[str, bool]:
    ids = {}
    for node in c.nodes():
        host = node["address"].removeprefix("http://")
        ids[host] = bool(node["online"])
    return {n: ids[c.roles[n].url.removeprefix("http://")] for n in names}


def test_region_host_cut_off_under_load(cluster: Cluster) -> None:
    """A region's host is unplugged from the bridge (link down, packets dropped without a
    reset) for ``CUT_SECONDS`` while the client host uploads and reads; then plugged back.

    Every acknowledged upload reads back byte-exact, reads never fail (k of a segment's
    pieces are always outside the region), and `skymesh durability` comes back clean.
    """
    region = cluster.layout.regions[0]
    names = cluster.node_names(region)
    record = cluster.folder(CLIENT, "stream") / "record.jsonl"
    record.parent.mkdir(parents=True)
    log = open(record.with_suffix(".out"), "wb")  # noqa: SIM115 - closed below
    stream = cluster.net.popen(
        CLIENT,
        [sys.executable, S3OPS, "stream", "stream", str(record)],
        env=_s3_env(cluster),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(8)  # objects on every region before the cut
        cut, cut_at = time.monotonic(), time.time()
        cluster.net.link_down(region)
        offline = _wait(
            "cut-off nodes still online",
            lambda: [n for n, on in _online(cluster, names).items() if on],
            30,
        )
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut)))
        before = _not_clean(cluster)  # shown only: repair may have caught up by now
        cluster.net.link_up(region)
        back, back_at = time.monotonic(), time.time()
        cluster.wait_online(timeout=60)
        rejoined = time.monotonic() - back
        time.sleep(3)  # uploads again on every region
    finally:
        stream.send_signal(signal.SIGTERM)
        try:
            stream.wait(200)
        finally:
            log.close()
    summary = record.with_suffix(".out").read_text()
    assert stream.returncode == 0, summary
    counts = json.loads(summary.strip().splitlines()[-1])
    out = cluster.net.run(
        CLIENT,
        [sys.executable, S3OPS, "verify", "stream", str(record)],
        env=_s3_env(cluster),
        check=False,
    )
    verified = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    during = [e for e in _entries(record) if e["op"] == "acked" and cut_at < e["t"] < back_at]
    retried = _log_count(cluster, "gateway", "retrying without")
    repaired = _wait("durability not clean", lambda: _not_clean(cluster), timeout=90, poll=2)
    print(
        f"\n{region} cut off for {CUT_SECONDS:.0f} s: offline after {offline:.1f} s, back online"
        f" {rejoined:.1f} s after the link; stream {counts}; durability clean"
        f" {repaired:.1f} s later; {len(during)} uploads acknowledged during the cut; segment"
        f" uploads the gateway retried without a node: {retried}; durability at the end of"
        f" the cut: {before or 'clean'}"
    )
    assert len(during) >= 5, "too few uploads while the region was cut off to prove anything"
    assert not verified["read_errors"], verified["read_errors"]
