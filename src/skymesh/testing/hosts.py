"""Separate network hosts on one Linux machine: a namespace per host, all on one bridge.

A :class:`HostNetwork` makes a bridge in the machine's own namespace and, per host, a
network namespace joined to it by a veth pair, with one address of a private /24 and
its loopback up. Processes started with :meth:`HostNetwork.popen` see only their
host's interfaces, so a role bound to its host's address is reachable from the other
hosts over the bridge, and one bound to 127.0.0.1 only from its own host. The
machine's namespace gets no address on the bridge and the hosts no default route:
the hosts reach only each other. :meth:`link_down` unplugs a host's cable
(its veth's bridge end): its packets vanish silently, as on a cut link, with no
reset for either side.

Needs root (CI runs as root) and iproute2. Knows nothing of skymesh: it runs argv.

Every name starts with ``smhh`` and a per-network tag, and the tag's owner pid is
written under ``/run/skymesh-hosts/`` before anything is made, so
:func:`remove_stale` can delete what a killed run left behind without touching a
network whose owner still runs (another test run beside this one).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from skymesh.children import die_with_parent

PREFIX = "smhh"
OWNERS = Path("/run/skymesh-hosts")
_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{4}})")


def _ip(*args: str, input_text: str | None = None, check: bool = True) -> str:
    out = subprocess.run(
        ["ip", *args], input=input_text, capture_output=True, text=True, timeout=30
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the machine already routes or holds addresses in."""
    used = []
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        dest = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if dest not in ("default", "local", "broadcast", "unreachable"):
                used.append(ipaddress.IPv4Network(dest, strict=False))
    for line in _ip("-4", "-o", "addr").splitlines():
        with contextlib.suppress(ValueError, IndexError):
            used.append(ipaddress.IPv4Interface(line.split()[3]).network)
    return used


def pick_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps nothing the machine routes."""
    rng = rng or random.Random()
    used = _used_networks()
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.{rng.randint(16, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no unused 10.x.y.0/24 found")


@dataclass(frozen=True)
class Host:
    name: str  # as the tests call it: "control", "eu-west", "client"
    netns: str  # the namespace: smhh<tag>-<name>
    address: str  # its one IPv4 address on the bridge
    veth: str  # the bridge end of its veth pair, in the machine's namespace


@dataclass
class HostNetwork:
    """Hosts on a bridge; :meth:`create` makes them, :meth:`close` removes every trace."""

    names: Sequence[str]
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    subnet: ipaddress.IPv4Network = field(default_factory=pick_subnet)
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}br"

    def create(self) -> HostNetwork:
        """Make the bridge and the hosts; on any failure, remove what was made."""
        assert len(set(self.names)) == len(self.names) and len(self.names) < 250
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / self.tag).write_text(f"{os.getpid()}\n")
        addresses = list(self.subnet.hosts())
        try:
            # One `ip -batch` for the machine's side: tens of ip runs cost seconds here.
            batch = [f"link add {self.bridge} type bridge", f"link set {self.bridge} up"]
            for i, name in enumerate(self.names):
                netns, veth = f"{PREFIX}{self.tag}-{name}", f"{PREFIX}{self.tag}b{i}"
                host = Host(name, netns, str(addresses[i]), veth)
                self.hosts[name] = host
                inner = f"{PREFIX}{self.tag}h{i}"
                batch += [
                    f"netns add {host.netns}",
                    f"link add {inner} type veth peer name {host.veth}",
                    f"link set {inner} netns {host.netns}",
                    f"link set {host.veth} master {self.bridge} up",
                ]
            _ip("-batch", "-", input_text="\n".join(batch) + "\n")
            for i, host in enumerate(self.hosts.values()):
                inside = [
                    f"link set {PREFIX}{self.tag}h{i} name eth0",
                    f"addr add {host.address}/{self.subnet.prefixlen} dev eth0",
                    "link set eth0 up",
                    "link set lo up",
                ]
                _ip("-n", host.netns, "-batch", "-", input_text="\n".join(inside) + "\n")
        except BaseException:
            self.close()
            raise
        return self

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def _argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[host].netns, *argv]

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on ``host`` to its end; with ``check``, fail showing its output."""
        out = subprocess.run(
            self._argv(host, argv),
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"on {host}: {' '.join(argv)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
            )
        return out

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: IO[Any] | int | None = None,
        stderr: IO[Any] | int | None = subprocess.STDOUT,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host``; :meth:`close` ends it if the caller did not.

        ``ip netns exec`` execs ``argv`` in place, so the returned pid is the
        program's own. Start from the main thread: the death signal that ends the
        child with us fires when the *thread* that started it ends.
        """
        proc = subprocess.Popen(
            self._argv(host, argv),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=die_with_parent,
        )
        self.procs.append(proc)
        return proc

    def link_down(self, host: str) -> None:
        """Unplug ``host`` from the bridge: its traffic is dropped without a word."""
        _ip("link", "set", self.hosts[host].veth, "down")

    def link_up(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].veth, "up")

    def close(self) -> None:
        """End every process on the hosts, then remove the namespaces and the bridge."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for host in self.hosts.values():
            _kill_inside(host.netns)  # anything our processes started in turn
        _remove(self.tag)


def _kill_inside(netns: str) -> None:
    """SIGKILL what still runs in one of our namespaces (its processes keep it alive)."""
    out = _ip("netns", "pids", netns, check=False)
    for pid in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _remove(tag: str) -> None:
    """Delete tag's namespaces (their veths go with them), its bridge and owner file."""
    for netns in _ip("netns", "list", check=False).splitlines():
        name = netns.split()[0] if netns.split() else ""
        if name.startswith(f"{PREFIX}{tag}-"):
            _kill_inside(name)
            _ip("netns", "del", name, check=False)
    for link in _links():
        if link.startswith(f"{PREFIX}{tag}"):
            _ip("link", "del", link, check=False)
    (OWNERS / tag).unlink(missing_ok=True)


def _links() -> list[str]:
    names = []
    for line in _ip("-o", "link", check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return names


def _owner_alive(tag: str) -> bool:
    try:
        pid = int((OWNERS / tag).read_text())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def remove_stale() -> list[str]:
    """Remove the networks of runs whose owner process is gone; the tags removed."""
    names = [line.split()[0] for line in _ip("netns", "list", check=False).splitlines() if line]
    tags = {m.group(1) for n in [*names, *_links()] if (m := _NAME.match(n))}
    if OWNERS.exists():
        tags |= {p.name for p in OWNERS.iterdir()}
    stale = sorted(t for t in tags if not _owner_alive(t))
    for tag in stale:
        _remove(tag)
    return stale
