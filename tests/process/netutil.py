"""A real `skymesh up` network for tests, and running the real client binaries against it.

Shared by the process tier (tests/process) and the client tier (tests/clients): both
need the same free ports, the same start-up wait and the same clean environment for
AWS tools (no ``AWS_CA_BUNDLE``: our endpoints are plain http).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from botocore.config import Config

NODES = 12


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports, picked at random."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port block")


@dataclass
class Up:
    home: Path
    proc: subprocess.Popen[str]
    endpoint: str
    access_key: str
    secret: str
    ports: tuple[int, int, int]

    def pid(self, name: str) -> int:
        return int((self.home / "run" / f"{name}.pid").read_text())

    def s3(self) -> Any:
        """A boto3 client for this network (boto3 ships no types)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        """Teardown: whatever state the test left, no process outlives it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_up(
    home: Path,
    ports: tuple[int, int, int] | None = None,
    *,
    nodes: int = NODES,
    env: dict[str, str] | None = None,
) -> Up:
    """`skymesh up` in ``home`` on free ports (or ``ports``: gateway, coordinator, first node).

    ``env`` adds settings (e.g. ``SKYMESH_COORDINATOR_*``) to the children's environment.
    """
    if ports is None:
        base = free_port_block(nodes + 2)
        ports = (base, base + 1, base + 2)
    gw, coord, node_base = ports
    env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, **(env or {})}
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
    assert access and secret and endpoint, text
    return Up(home, proc, endpoint.group(1), access.group(1), secret.group(1), ports)


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


def aws_run(
    u: Up, *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    exe = find_tool("aws", "awscli")
    return run_tool(
        [exe, "--endpoint-url", u.endpoint, *args], aws_env(u), timeout=timeout, check=check
    )


def aws(u: Up, *args: str, timeout: float = 300) -> str:
    """Run the AWS CLI against the network; its stdout, after asserting it succeeded."""
    return aws_run(u, *args, timeout=timeout).stdout
