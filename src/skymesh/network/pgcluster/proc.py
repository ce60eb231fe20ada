"""The formation's processes: ``pg_autoctl`` and ``psql`` as the server user (inside a
network namespace where one is named), killing a machine's process tree, and the
folders the server user must reach. Binaries, user and ports: ``skymesh.pgprocs``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skymesh.pgprocs import PG_USER, as_pg_user


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
