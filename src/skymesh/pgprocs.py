"""PostgreSQL's server programs on this machine: where they are, whom they run as, a port.

Shared by the single test server (``skymesh.testing.postgres``) and the
pg_auto_failover formation (``skymesh.network.pgcluster``). PostgreSQL refuses to run
as root: when we are root, servers and ``pg_autoctl`` run as the ``postgres`` user
that Debian's package creates, in folders it owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

PG_USER = "postgres"
DEBIAN_PACKAGE = "postgresql"
DEBIAN_ROOT = Path("/usr/lib/postgresql")


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def pg_bin_dir() -> Path:
    """The folder of ``initdb``, ``postgres`` and ``pg_ctl``: ``$SKYMESH_PG_BIN``, else
    the newest Debian ``/usr/lib/postgresql/<version>/bin`` (not on ``PATH`` there),
    else ``pg_config --bindir``. Missing: :class:`PostgresMissing`, saying what to
    install (a test that needs PostgreSQL fails, it does not skip)."""
    candidates: list[Path] = []
    explicit = os.environ.get("SKYMESH_PG_BIN")
    if explicit:
        candidates.append(Path(explicit))
    if DEBIAN_ROOT.is_dir():
        versions = [p for p in DEBIAN_ROOT.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found; install"
        f" Debian's package (apt-get install {DEBIAN_PACKAGE}) or set SKYMESH_PG_BIN"
    )


def as_pg_user() -> dict[str, Any]:
    """``subprocess`` keyword arguments that run a child as ``postgres`` when we are
    root, and as ourselves otherwise."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def give_to_pg_user(path: Path) -> None:
    """Make ``path`` (a folder we created) the server user's, so it may write there."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (the kernel's choice; another binder may take it
    before the server does, which then fails to start, loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
