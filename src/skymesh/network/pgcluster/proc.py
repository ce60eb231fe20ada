"""Processes of a local PostgreSQL: its binaries, its user, free ports, killing a process tree.

PostgreSQL refuses to run as root, so when we are root every server and ``pg_autoctl``
runs as the ``postgres`` user that Debian's package creates, in folders it owns.
(``skymesh.testing.postgres`` has the same few lines for a single test server.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PG_USER = "postgres"


def pg_bin_dir() -> Path:
    """The folder of ``pg_ctl``: ``SKYMESH_PG_BIN``, else the newest Debian
    ``/usr/lib/postgresql/<version>/bin`` (not on ``PATH`` there), else ``pg_config --bindir``."""
    explicit = os.environ.get("SKYMESH_PG_BIN")
    if explicit:
        return Path(explicit)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    raise FileNotFoundError("no PostgreSQL binaries: set SKYMESH_PG_BIN to the folder of pg_ctl")


def as_pg_user() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that run a child as ``postgres`` when we are
    root, and as ourselves otherwise."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def pg_command(argv: Sequence[str], netns: str = "") -> tuple[list[str], dict[str, Any]]:
    """``argv`` and the ``subprocess`` keyword arguments that run it as the server user,
    inside the network namespace ``netns`` when one is named.

    ``ip netns exec`` needs root, so there the switch to the server user happens inside
    it, by ``setpriv`` (which, like ``ip netns exec``, execs in place: the child's pid
    stays the program's). A change of user clears the parent-death signal that
    ``die_with_parent`` set, so ``setpriv`` sets it again."""
    if not netns:
        return list(argv), as_pg_user()
    prefix = ["ip", "netns", "exec", netns]
    if os.geteuid() == 0:
        prefix += ["setpriv", "--reuid", PG_USER, "--regid", PG_USER, "--clear-groups"]
        prefix += ["--pdeathsig", "TERM", "--"]
    return [*prefix, *argv], {}


def give_to_pg_user(path: Path) -> None:
    """Make ``path`` (a folder we created) the server user's, so it may write there."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port(host: str) -> int:
    """A port free on ``host`` now (the kernel's choice; a race with other binders is
    possible but rare, and ``pg_autoctl create`` then fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        # the command name, in parentheses, may hold spaces: the fields follow its last ")"
        ppid = int(fields.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_tree(root: int) -> list[int]:
    """SIGKILL ``root`` and its descendants as one event, as if their machine lost power:
    all are stopped first, so none sees another die and reacts (a keeper restarting its
    postgres, a backend noticing its postmaster is gone) before all are killed."""
    pids = process_tree(root)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    return pids


def die_with_parent() -> None:
    """For ``preexec_fn``: the child gets SIGTERM when the thread that started it ends,
    so a killed test run leaves no server behind. Start children from a long-lived
    thread (the main thread or an event loop's), never from a short-lived worker."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def check_reachable(path: Path) -> None:
    """When we are root, the server user must be able to walk down to ``path``: pytest's
    ``tmp_path`` (under a 0700 folder of root's) is not, ``tempfile.mkdtemp()`` is."""
    if os.geteuid() != 0:
        return
    uid = pwd.getpwnam(PG_USER).pw_uid
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            raise PermissionError(f"{PG_USER} cannot enter {parent} on the way to {path}")
