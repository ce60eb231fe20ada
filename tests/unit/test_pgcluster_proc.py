"""How pgcluster runs a PostgreSQL command: as the server user, in a namespace if named."""

from __future__ import annotations

import os

import pytest

from skymesh.network.pgcluster.proc import pg_command
from skymesh.pgprocs import PG_USER, as_pg_user


def test_without_a_namespace_the_switch_of_user_is_popens() -> None:
    argv, kwargs = pg_command(["pg_autoctl", "run"])
    assert argv == ["pg_autoctl", "run"]
    assert kwargs == as_pg_user()


@pytest.mark.skipif(os.geteuid() != 0, reason="the switch of user happens only as root")
def test_in_a_namespace_setpriv_switches_user_inside_ip_netns_exec() -> None:
    """``ip netns exec`` needs root, so Popen must not switch user first; setpriv does it
    inside, and arms the parent-death signal again (a change of user clears it)."""
    argv, kwargs = pg_command(["pg_autoctl", "run"], "smhh0000-db1")
    assert kwargs == {}
    assert argv[:4] == ["ip", "netns", "exec", "smhh0000-db1"]
    assert argv[4] == "setpriv" and argv[-3:] == ["--", "pg_autoctl", "run"]
    assert argv[5:7] == ["--reuid", PG_USER] and "--pdeathsig" in argv
