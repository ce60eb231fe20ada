"""The hosts tier: one skymesh network over separate network hosts (namespaces) per module.

Needs root and iproute2 (CI has both). Without them the tier fails, never skips:
run the rest with ``pytest -m "not hosts"``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from skymesh.testing.hosts import HostNetwork, remove_stale
from tests.hosts.cluster import Cluster, Layout


@pytest.fixture
def root_user() -> None:
    """Fails the test unless it may make namespaces (root and iproute2)."""
    _require_root()


def _require_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail(
            "the hosts tier needs root and iproute2 (network namespaces);"
            ' deselect it with -m "not hosts"'
        )


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The highly available network (`Layout`): a database host each for the formation's
    monitor and two servers, two control hosts (a coordinator each), two gateway hosts,
    three region hosts of four nodes each, and a client host; every role a real process
    bound to its host's address. One for the package: the static checks
    (``test_hosts.py``) run first, then the chaos cases (``test_hosts_chaos.py``), each
    of which leaves it whole for the next."""
    _require_root()
    remove_stale()  # what runs killed before their teardown left behind
    layout = Layout()
    started = time.monotonic()
    net = HostNetwork(layout.hosts()).create()
    try:
        c = Cluster(net, layout, tmp_path_factory.mktemp("hosts"))
        try:
            c.start()
            print(f"\nhosts network {net.subnet} up in {time.monotonic() - started:.1f} s")
            yield c
        finally:
            c.stop()
    finally:
        net.close()
