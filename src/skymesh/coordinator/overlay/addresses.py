"""Which node addresses the coordinator registers: a plain base URL into an allowed network.

Every role reaches a node at the address it registered, so an address is a way to
make the coordinator and gateways send requests somewhere. It must be an
``http``/``https`` URL of a host and a port and nothing else (no user info, path,
query or fragment), and the host, resolved, must lie in ``node_networks``
(:class:`NodeNetworks`): by default loopback and the private ranges. Every address
a name resolves to must be allowed, so a name cannot hide an internal address
behind an allowed one. Whatever the list says, an unspecified (``0.0.0.0``) or
multicast address is never a node.

The parsing and the network test are pure; :meth:`NodeNetworks.check` resolves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from skymesh.errors import BadRequest

MAX_ADDRESS = 512
RESOLVE_TIMEOUT = 5.0  # seconds to resolve a node's host name

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_node_address(address: str) -> tuple[str, int]:
    """(host, port) of a node's base URL; :class:`BadRequest` says what is wrong with it."""
    shown = repr(address[:100])
    if len(address) > MAX_ADDRESS or not address.isprintable():
        raise BadRequest(f"node address {shown} is too long or not printable")
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as e:
        raise BadRequest(f"node address {shown} is not a URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise BadRequest(f"node address {shown} must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise BadRequest(f"node address {shown} must not carry user info")
    if parts.path not in ("", "/") or parts.query or parts.fragment or address.endswith(("?", "#")):
        raise BadRequest(f"node address {shown} must be a base URL: no path, query or fragment")
    host = parts.hostname
    if not host:
        raise BadRequest(f"node address {shown} names no host")
    if port is None:
        raise BadRequest(f"node address {shown} names no port (http://host:port)")
    if not 1 <= port <= 65535:
        raise BadRequest(f"node address {shown}: port {port} is out of range")
    return host, port


def _as_ip(host: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone is not part of it
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class NodeNetworks:
    """The networks node addresses may be in (``CoordinatorConfig.node_networks``)."""

    def __init__(self, networks: Sequence[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def allows(self, ip: IPAddress) -> bool:
        """True when ``ip`` may be a node's (pure)."""
        if ip.is_unspecified or ip.is_multicast:
            return False
        return not self.networks or any(ip in net for net in self.networks)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "any network"

    async def check(self, address: str) -> None:
        """Refuse (:class:`BadRequest`) an address that is malformed or leads outside the networks."""
        host, port = parse_node_address(address)
        literal = _as_ip(host)
        if literal is not None:
            ips = [literal]
        else:
            ips = await _resolve(host, port)
        outside = sorted({str(ip) for ip in ips if not self.allows(ip)})
        if outside:
            raise BadRequest(
                f"node address {address[:100]!r} leads to {', '.join(outside)}, outside the"
                f" networks nodes may be in ({self.describe()}; the coordinator's"
                " node_networks setting)"
            )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as e:
        raise BadRequest(f"node address host {host!r} does not resolve: {e}") from e
    ips = [ip for info in infos if (ip := _as_ip(str(info[4][0]))) is not None]
    if not ips:
        raise BadRequest(f"node address host {host!r} resolves to no IP address")
    return ips
