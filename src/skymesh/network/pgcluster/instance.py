"""One ``pg_autoctl run`` (a monitor or a keeper with its postgres) as our child process."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from skymesh.children import die_with_parent
from skymesh.network.pgcluster.proc import kill_tree, pg_command

# "machine": the host loses power: keeper, postmaster and backends die at once.
# "postgres": only the postmaster crashes; its keeper restarts it (no failover).
KillWhat = Literal["machine", "postgres"]


class PgAutoctlError(RuntimeError):
    """A ``pg_autoctl`` command failed; the message ends with its output."""


@dataclass
class Instance:
    name: str
    pgdata: Path
    host: str
    port: int
    env: Mapping[str, str]  # pg_autoctl finds its config through XDG_CONFIG_HOME
    log_path: Path
    netns: str = ""  # the network namespace it runs in, a host of its own; "": ours
    proc: subprocess.Popen[bytes] | None = None

    def autoctl(self, *args: str, check: bool = True) -> str:
        """Run ``pg_autoctl ARGS --pgdata <ours>`` to completion; its output goes to our log."""
        args = (*args, "--pgdata", str(self.pgdata))
        return run_autoctl(args, self.env, self.log_path, check, self.netns)

    def start(self) -> None:
        """``pg_autoctl run``: it starts postgres, restarts it when it dies, and follows
        the monitor's orders. Also what a rebooted machine would do."""
        argv, user = pg_command(["pg_autoctl", "run", "--pgdata", str(self.pgdata)], self.netns)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for us does not reach it first
                preexec_fn=die_with_parent,
                **user,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill(self, what: KillWhat = "machine") -> None:
        """SIGKILL, with no chance to clean up: see ``KillWhat``."""
        if what == "postgres":
            pid = self.postmaster_pid()
            if pid is None:
                raise ProcessLookupError(f"{self.name}: no postmaster.pid")
            os.kill(pid, signal.SIGKILL)
            return
        if self.proc is None:
            raise ProcessLookupError(f"{self.name} is not running")
        kill_tree(self.proc.pid)  # the postmaster and its backends are descendants
        self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop in order: pg_autoctl stops postgres (fast mode) on SIGTERM."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill("machine")


def run_autoctl(
    args: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    check: bool = True,
    netns: str = "",
) -> str:
    """Run one ``pg_autoctl`` command as the server user (in ``netns``, when named, as it
    may have to reach addresses only there); return its standard output."""
    argv, user = pg_command(["pg_autoctl", *args], netns)
    done = subprocess.run(
        argv, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, **user
    )
    with open(log_path, "ab") as log:
        log.write(b"$ pg_autoctl " + " ".join(args).encode() + b"\n" + done.stderr)
    if check and done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise PgAutoctlError(f"pg_autoctl {' '.join(args)} exited {done.returncode}:\n{tail}")
    stdout: bytes = done.stdout
    return stdout.decode()
