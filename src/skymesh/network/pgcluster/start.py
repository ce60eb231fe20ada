"""Create and run a formation: ``pg_autoctl create`` each instance, then ``pg_autoctl run``.

The order is pg_auto_failover's: the monitor first; the first node registers as
"single"; the second is created from a base backup of the first (so it inherits the
first's ``postgresql.auto.conf``) and, once caught up, makes the first "primary".
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from skymesh.network.pgcluster.formation import Formation, FormationSpec, NodeState
from skymesh.network.pgcluster.instance import Instance
from skymesh.network.pgcluster.proc import check_reachable, pg_command
from skymesh.network.pgcluster.settings import conf_lines
from skymesh.pgprocs import free_port, give_to_pg_user, pg_bin_dir


def start_formation(spec: FormationSpec) -> Formation:
    """Start a monitor and ``len(spec.node_hosts)`` nodes, wait until the standby is in
    sync, create the application's role and database; stop everything on failure."""
    made_root = spec.root is None
    root = Path(tempfile.mkdtemp(prefix="skymesh-pgha-")) if spec.root is None else spec.root
    root.mkdir(parents=True, exist_ok=True)
    check_reachable(root)
    give_to_pg_user(root)
    bindir = pg_bin_dir()
    env = {
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PG_CONFIG": str(bindir / "pg_config"),
        "HOME": str(root),
        # pg_autoctl keeps each instance's config and state under these, by pgdata path
        "XDG_CONFIG_HOME": str(root / "xdg" / "config"),
        "XDG_DATA_HOME": str(root / "xdg" / "data"),
        "XDG_RUNTIME_DIR": str(root / "xdg" / "run"),
        "LANG": "C.UTF-8",
    }
    logs = root / "logs"
    logs.mkdir(exist_ok=True)

    def instance(name: str, host: str) -> Instance:
        netns = spec.netns.get(host, "")
        # an address in another namespace cannot be bound here; a port free on our
        # loopback is as good there, and clear of the Unix socket of a server beside us
        port = free_port("127.0.0.1" if netns else host)
        return Instance(name, root / name, host, port, env, logs / f"{name}.log", netns)

    monitor = instance("monitor", spec.monitor_host)
    nodes = [instance(f"node{i + 1}", host) for i, host in enumerate(spec.node_hosts)]
    formation = Formation(spec, root, monitor, nodes, env, remove_root=made_root)
    try:
        _create_monitor(formation, bindir)
        for i, node in enumerate(nodes):
            _create_node(formation, node, bindir)
            node.start()
            want = "single" if i == 0 else "secondary"
            formation.wait_until(_reports(node.name, want), f"{node.name} {want}", 120.0)
        formation.wait_in_sync()
        _create_app_role(formation)
    except BaseException:
        formation.stop()
        raise
    return formation


def _reports(name: str, state: str) -> Callable[[list[NodeState]], bool]:
    def done(states: list[NodeState]) -> bool:
        return any(s.name == name and s.settled and s.current == state for s in states)

    return done


def _ssl_args(spec: FormationSpec) -> list[str]:
    return ["--ssl-self-signed"] if spec.ssl else ["--no-ssl"]


def _create_monitor(f: Formation, bindir: Path) -> None:
    m = f.monitor
    m.autoctl(
        "create", "monitor",
        "--pgport", str(m.port),
        "--hostname", m.host,
        "--auth", "trust",
        "--pgctl", str(bindir / "pg_ctl"),
        *_ssl_args(f.spec),
    )  # fmt: skip
    # postgresql.auto.conf is read last, so these win over pg_autoctl's own file
    _append_auto_conf(
        m,
        {
            "listen_addresses": m.host,
            **f.spec.server_settings,
            **f.spec.timeouts.monitor_settings(),
        },
    )
    m.start()
    f.wait_until(lambda states: True, "monitor", 60.0)


def _create_node(f: Formation, node: Instance, bindir: Path) -> None:
    node.autoctl(
        "create", "postgres",
        "--pgport", str(node.port),
        "--hostname", node.host,
        "--listen", node.host,
        "--name", node.name,
        "--monitor", f.monitor_uri,
        "--dbname", f.spec.database,
        "--auth", "trust",
        "--pgctl", str(bindir / "pg_ctl"),
        *_ssl_args(f.spec),
    )  # fmt: skip
    for key, value in f.spec.timeouts.keeper_settings().items():
        node.autoctl("config", "set", key, value)
    if node is f.nodes[0]:  # the others copy it in their base backup
        _append_auto_conf(node, dict(f.spec.server_settings))


def _append_auto_conf(inst: Instance, settings: dict[str, str]) -> None:
    """Add settings while the server is stopped (``pg_autoctl create`` leaves it so)."""
    with open(inst.pgdata / "postgresql.auto.conf", "a") as conf:
        conf.write(conf_lines(settings))


def _psql(f: Formation, node: Instance, sql: str) -> None:
    argv, user = pg_command(
        [
            str(pg_bin_dir() / "psql"),
            "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", node.host, "-p", str(node.port), "-U", "postgres", "-d", f.spec.database,
            "-c", sql,
        ],
        node.netns,
    )  # fmt: skip
    subprocess.run(argv, env=dict(f.env), check=True, capture_output=True, **user)


def _reload(f: Formation, node: Instance) -> None:
    """Make a server reread its files by signal (``pg_ctl reload``), not over a connection:
    a standby's copied pg_hba.conf lets ``postgres`` in only from 127.0.0.1 and the
    primary's address, neither of which it has on a host of its own."""
    argv, user = pg_command([str(pg_bin_dir() / "pg_ctl"), "reload", "-D", str(node.pgdata)])
    subprocess.run(argv, env=dict(f.env), check=True, capture_output=True, **user)


def _create_app_role(f: Formation) -> None:
    """The coordinators' role owns their database; the standby gets both by replication.
    Extra client networks get a trust rule on every node (pg_hba.conf is not replicated)."""
    primary = f.primary()
    assert primary is not None
    db, user = f.spec.database, f.spec.user
    _psql(f, primary, f'CREATE ROLE "{user}" LOGIN; ALTER DATABASE "{db}" OWNER TO "{user}"')
    if f.spec.client_cidrs:
        for node in f.nodes:
            with open(node.pgdata / "pg_hba.conf", "a") as hba:
                for cidr in f.spec.client_cidrs:
                    hba.write(f'host "{db}" "{user}" {cidr} trust # skymesh coordinators\n')
            _reload(f, node)
