"""HostNetwork itself: hosts reach each other over the bridge, a cut link silences a host,
and a killed run's leftovers are removed while a live run's are not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skymesh.testing.hosts import OWNERS, HostNetwork, remove_stale

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], 8123), timeout=2).close()"


def _names() -> str:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return netns + links


def test_hosts_reach_each_other_until_a_link_is_cut(root_user: None) -> None:
    net = HostNetwork(["a", "b"]).create()
    try:
        server = [sys.executable, "-m", "http.server", "--bind", net.address("a"), "8123"]
        net.popen("a", server, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        probe = [sys.executable, "-c", f"import time; time.sleep(0.5); {CONNECT}", net.address("a")]
        assert net.run("b", probe, check=False).returncode == 0
        # a host routes only its own subnet: nothing beyond the bridge
        routes = net.run("b", ["ip", "-4", "route"]).stdout.splitlines()
        assert [r.split()[0] for r in routes] == [str(net.subnet)]
        net.link_down("a")
        assert net.run("b", probe, check=False).returncode != 0
        net.link_up("a")
        assert net.run("b", probe, check=False).returncode == 0
    finally:
        net.close()
    assert f"smhh{net.tag}" not in _names()


def test_only_networks_of_dead_runs_are_removed(root_user: None) -> None:
    dead, alive = HostNetwork(["x"]).create(), HostNetwork(["y"]).create()
    try:
        gone = subprocess.Popen(["true"])
        gone.wait()
        (OWNERS / dead.tag).write_text(f"{gone.pid}\n")  # as if its run were killed
        assert dead.tag in remove_stale()
        names = _names()
        assert f"smhh{dead.tag}" not in names and f"smhh{alive.tag}-y" in names
    finally:
        dead.close()
        alive.close()
