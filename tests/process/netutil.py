"""A real `skymesh up` network for tests, and running the real client binaries against it.

Shared by the process tier (tests/process) and the client tier (tests/clients): both
need the same free ports, the same start-up wait and the same clean environment for
AWS tools (no ``AWS_CA_BUNDLE``: our endpoints are plain http).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import boto3
import pytest
from botocore.config import Config

from skymesh.network.up import Child

NODES = 12


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports, picked at random.

    Below the kernel's ephemeral range (32768+ here), so no outgoing connection
    of another process takes one between this check and the role's bind.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    for _ in range(200):
        base = random.randint(20000, max(20001, low - count - 1))
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port block")


@dataclass
class Up:
    """A running `skymesh up`, and the roles a test started again by hand (``restart``).

    `skymesh up` does not restart a child that dies, so a chaos test that kills one
    starts it again itself, from the config file `up` wrote and with the same
    environment: the role keeps its identity, data and ports. Start roles only from
    the test's main thread: a child's ``PR_SET_PDEATHSIG`` fires when the *thread*
    that started it ends.
    """

    home: Path
    proc: subprocess.Popen[str]
    endpoint: str
    access_key: str
    secret: str
    ports: tuple[int, int, int]
    inference_key: str = ""  # the OpenAI API's key the banner printed
    env: dict[str, str] = field(default_factory=dict)  # what start_up added for the children
    nodes: int = NODES
    restarted: dict[str, Child] = field(default_factory=dict)

    def pid(self, name: str) -> int:
        return int((self.home / "run" / f"{name}.pid").read_text())

    def s3(self, *, retries: int = 2, read_timeout: float = 60) -> Any:
        """A boto3 client for this network (boto3 ships no types).

        ``retries=1`` makes every call one attempt, so a test knows exactly which
        request failed.
        """
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": retries, "mode": "standard"},
                read_timeout=read_timeout,
                connect_timeout=10,
            ),
        )

    # ---- chaos: the roles' processes, killed and started again --------------------

    @property
    def admin_token(self) -> str:
        return str(json.loads((self.home / "state.json").read_text())["admin_token"])

    @property
    def coordinator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[1]}"

    def node_names(self) -> list[str]:
        return [f"node-{i + 1:02d}" for i in range(self.nodes)]

    def node_port(self, name: str) -> int:
        return self.ports[2] + int(name.removeprefix("node-")) - 1

    def node_id(self, name: str) -> str:
        from skymesh.wire.identity import Identity

        return Identity.load(self.home / "nodes" / name / "identity.key").id

    def region(self, name: str) -> str:
        """The region `up` gave a node (from the config it wrote)."""
        import tomllib

        return str(tomllib.loads(self.config_path(name).read_text())["node"]["region"])

    def config_path(self, name: str) -> Path:
        if name.startswith("node-"):
            return self.home / "nodes" / name / "config.toml"
        return self.home / name / "config.toml"

    def alive(self, name: str) -> bool:
        """Whether the role's process runs (a zombie or a missing pid file: no)."""
        try:
            pid = self.pid(name)
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")

    def kill_role(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the role; for SIGKILL, return once it is dead (10 s at most)."""
        os.kill(self.pid(name), sig)
        if sig != signal.SIGKILL:
            return
        child = self.restarted.get(name)
        if child is not None and child.proc is not None:
            child.proc.wait(10)
        deadline = time.monotonic() + 10
        while self.alive(name):
            assert time.monotonic() < deadline, f"{name} still alive 10 s after SIGKILL"
            time.sleep(0.02)

    def restart(
        self,
        name: str,
        *,
        env: Mapping[str, str] | None = None,
        fault: str | None = None,
        wait: Literal["online", "serving", "no"] = "online",
    ) -> None:
        """Start a dead role again from its config, with `up`'s environment plus ``env``.

        ``fault`` runs a node through :mod:`skymesh.testing.faulty_node` instead.
        ``wait``: until it answers ``/healthz`` (``serving``), and for a node also
        until the coordinator heard from it again (``online``); or not at all.
        """
        assert not self.alive(name), f"{name} is still running"
        role = "node" if name.startswith("node-") else name
        config = str(self.config_path(name))
        args, module = [role, "--config", config], "skymesh"
        if fault is not None:
            assert role == "node", "only nodes have faults"
            args = ["--config", config, "--fault", fault]
            module = "skymesh.testing.faulty_node"
        child = Child(
            name,
            args,
            self.home / "logs" / f"{name}.log",
            env=clean_env(**self.env, **(env or {})),
            module=module,
        )
        started = time.time()
        child.start()
        self.restarted[name] = child
        if wait == "no":
            return
        if role == "node":
            wait_http(f"http://127.0.0.1:{self.node_port(name)}/healthz", name, self)
            if wait == "online":
                self.wait_online([name], since=started)
        elif role == "coordinator":
            wait_http(f"{self.coordinator_url}/healthz", name, self)
        else:
            wait_http(f"{self.endpoint}/healthz", name, self)

    def node_status(self) -> dict[str, dict[str, Any]]:
        """``GET /v1/nodes`` by node name (nodes the coordinator never saw are left out)."""
        req = urllib.request.Request(
            f"{self.coordinator_url}/v1/nodes",
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            by_id = {n["node_id"]: n for n in json.loads(resp.read())["nodes"]}
        return {
            name: by_id[self.node_id(name)]
            for name in self.node_names()
            if self.node_id(name) in by_id
        }

    def wait_online(
        self, names: Sequence[str], *, since: float = 0.0, online: bool = True, timeout: float = 30
    ) -> None:
        """Until the coordinator sees every node of ``names`` online (heard from after
        ``since``), or offline with ``online=False``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.node_status()
            except OSError:
                status = {}
            pending = [
                n
                for n in names
                if n not in status
                or status[n]["online"] != online
                or (online and status[n]["last_seen"] < since)
            ]
            if not pending:
                return
            assert time.monotonic() < deadline, (
                f"{pending} not {'online' if online else 'offline'} after {timeout:.0f} s;"
                f" see {self.home / 'logs'}"
            )
            time.sleep(0.2)

    def durability(self) -> dict[str, Any]:
        """The report of `skymesh durability --json`, run as a user would."""
        out = subprocess.run(
            [sys.executable, "-m", "skymesh", "durability", "--home", str(self.home), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert out.returncode in (0, 1), f"skymesh durability exited {out.returncode}: {out.stderr}"
        report: dict[str, Any] = json.loads(out.stdout)
        return report

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        """Teardown: whatever state the test left, no process outlives it."""
        for name in ["coordinator", "gateway", *self.node_names()]:
            if self.alive(name):  # a stopped process would not act on SIGTERM
                os.kill(self.pid(name), signal.SIGCONT)
        for child in self.restarted.values():
            if child.alive():
                assert child.proc is not None
                child.proc.kill()
                child.proc.wait()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_http(url: str, name: str, u: Up, timeout: float = 30) -> None:
    """Until ``url`` answers 200; fails early, pointing at the log, if the role died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert u.alive(name), f"{name} exited; see {u.home / 'logs' / (name + '.log')}"
        assert time.monotonic() < deadline, f"{name} did not answer {url} within {timeout:.0f} s"
        time.sleep(0.1)


def short_of_optimal(report: Mapping[str, Any]) -> dict[str, int]:
    """Segments below their scheme's ``optimal`` healthy pieces, as {"k/r/o/t: healthy": count}.

    Reads each scheme from the report, so nothing depends on the scheme the
    coordinator picked.
    """
    short: dict[str, int] = {}
    for entry in report["schemes"]:
        sc = entry["scheme"]
        for healthy, count in entry["histogram"].items():
            if int(healthy) < sc["optimal"] and count:
                short[f"{sc['k']}/{sc['repair']}/{sc['optimal']}/{sc['total']}: {healthy}"] = count
    return short


def start_up(
    home: Path,
    ports: tuple[int, int, int] | None = None,
    *,
    nodes: int = NODES,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Up:
    """`skymesh up` in ``home`` on free ports (or ``ports``: gateway, coordinator, first node).

    ``env`` adds settings (e.g. ``SKYMESH_COORDINATOR_*``) to the children's environment;
    ``args`` adds options to `skymesh up` (e.g. ``--regions``).
    """
    if ports is None:
        base = free_port_block(nodes + 2)
        ports = (base, base + 1, base + 2)
    gw, coord, node_base = ports
    extra = dict(env or {})
    env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, **extra}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skymesh",
            "up",
            "--home",
            str(home),
            "--nodes",
            str(nodes),
            "--port",
            str(gw),
            "--coordinator-port",
            str(coord),
            "--node-base-port",
            str(node_base),
            "--no-fsync",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    text = "".join(lines)
    if "Press Ctrl-C" not in text:
        proc.kill()
        logs = "\n".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
        raise AssertionError(f"skymesh up did not come up:\n{text}\n{logs}")
    access = re.search(r"access key id\s+(\S+)", text)
    secret = re.search(r"secret access key\s+(\S+)", text)
    endpoint = re.search(r"S3 endpoint\s+(\S+)", text)
    inference_key = re.search(r"inference API key\s+(\S+)", text)
    assert access and secret and endpoint and inference_key, text
    return Up(
        home,
        proc,
        endpoint.group(1),
        access.group(1),
        secret.group(1),
        ports,
        inference_key=inference_key.group(1),
        env=extra,
        nodes=nodes,
    )


class Tool(Protocol):
    """A client binary bound to a network: call it with arguments, get the finished process."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def find_tool(name: str, package: str) -> str:
    """The client binary, Debian's first; a clear failure (never a skip) when it is missing.

    CI installs every client (.ci/run), so a missing one is a broken setup, not a
    reason to pass quietly.
    """
    exe = shutil.which(name, path="/usr/bin") or shutil.which(name)
    if exe is None:
        pytest.fail(f"`{name}` is not installed: run `apt-get install {package}` (see .ci/run)")
    return exe


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the CA bundle that breaks plain-http endpoints."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(extra)
    return env


def run_tool(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 120,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client binary with a timeout; with `check`, fail showing all it printed."""
    out = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert out.returncode == 0, (
            f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
        )
    return out


def aws_env(u: Up) -> dict[str, str]:
    """The AWS CLI's environment: our keys only, no config files, no instance metadata."""
    return clean_env(
        AWS_ACCESS_KEY_ID=u.access_key,
        AWS_SECRET_ACCESS_KEY=u.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
    )


def aws_exe() -> str:
    """The AWS CLI the tests drive: ``$SKYMESH_TEST_AWS`` when set (to test the v1 CLI
    beside Debian's v2, say), else :func:`find_tool`'s."""
    chosen = os.environ.get("SKYMESH_TEST_AWS")
    if chosen:
        exe = shutil.which(chosen)
        if exe is None:
            pytest.fail(f"SKYMESH_TEST_AWS={chosen!r} is not an executable")
        return exe
    return find_tool("aws", "awscli")


def aws_version(exe: str | None = None) -> str:
    """``aws --version`` of the CLI the tests drive: ``aws-cli/2.9.19 Python/3.11.2 ...``."""
    out = subprocess.run(
        [exe or aws_exe(), "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    return (out.stdout or out.stderr).strip()


def aws_run(
    u: Up, *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    exe = aws_exe()
    return run_tool(
        [exe, "--endpoint-url", u.endpoint, *args], aws_env(u), timeout=timeout, check=check
    )


def aws(u: Up, *args: str, timeout: float = 300) -> str:
    """Run the AWS CLI against the network; its stdout, after asserting it succeeded."""
    return aws_run(u, *args, timeout=timeout).stdout
