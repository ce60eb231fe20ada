"""Several coordinators behind one client: which URL to try next, and when to try another.

Gateways and nodes may be given several coordinator URLs (all replicas over one
database, any of which answers any call). :class:`Endpoints` is the set a process
shares between its clients: each call starts at the next URL in turn (so calls are
spread), healthy URLs first; a URL whose attempt failed in transport is put last
for ``down_for`` seconds, so later calls skip it without waiting on it again.

:func:`may_retry` is the one rule for trying the next URL after a failed attempt
(:meth:`skymesh.rpc.RpcClient.request` applies it):

- the connection never opened (refused, reset while connecting, connect timeout):
  the request never left, so another coordinator may always be asked;
- anything later (a timeout, a connection dropped after the request was sent, or a
  502/503/504 answer): the first coordinator may have done the work, so another is
  asked only when the route is safe to repeat (``Route.idempotent``).

When no retry is allowed or every URL failed, the caller gets
:class:`~skymesh.errors.Unavailable` (503), which the gateway answers as a retryable
S3 error; never a 4xx.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

import aiohttp

#: Seconds a URL whose attempt failed in transport is tried only after the others.
DOWN_FOR = 5.0
#: Per-attempt limits on a coordinator call: a hung coordinator costs at most this
#: much before the next one is asked (or the caller is answered). A connect that
#: takes seconds on a LAN means the host is gone.
ATTEMPT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 3.0
#: Answers that say the coordinator (or a proxy before it) could not serve the call now.
RETRYABLE_STATUSES = frozenset({502, 503, 504})


def parse_urls(urls: str | Sequence[str]) -> list[str]:
    """Base URLs from a list, or a string of them separated by commas or spaces."""
    items = urls.replace(",", " ").split() if isinstance(urls, str) else list(urls)
    out = [u.strip().rstrip("/") for u in items if u.strip()]
    if not out:
        raise ValueError("no coordinator URL given")
    return list(dict.fromkeys(out))  # in order, each once


class Endpoints:
    """The base URLs of one service's replicas, with which of them failed lately.

    Share one instance between the clients of a process (every project of a gateway):
    what one call learns about a dead coordinator spares the others its timeout.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        down_for: float = DOWN_FOR,
        timeout: aiohttp.ClientTimeout | None = None,
        start: int | None = None,
        sticky: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = parse_urls(urls)
        self.down_for = down_for
        # sticky: every call starts at the URL that answered last (a node: its join's
        # identity check and join, and its heartbeats, reach one coordinator until it
        # fails); else each call starts at the next URL in turn (a gateway spreads load)
        self.sticky = sticky
        # per attempt; None: the session's own (a single URL keeps its old behaviour)
        self.timeout = timeout
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self.answered: Counter[str] = Counter()  # calls each URL answered
        # the URL of the first call: random (unless a test says), so processes started
        # together do not all begin on the first
        first = random.randrange(len(self.urls)) if start is None else start
        self._turn = itertools.count(first)
        self._last = first % len(self.urls)  # the URL that answered last (sticky)

    @classmethod
    def failover(
        cls, urls: str | Sequence[str], timeout: float = ATTEMPT_TIMEOUT, *, sticky: bool = False
    ) -> Endpoints:
        """Endpoints for coordinator calls, with per-attempt timeouts."""
        return cls(
            urls,
            timeout=aiohttp.ClientTimeout(
                total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout)
            ),
            sticky=sticky,
        )

    @property
    def first(self) -> str:
        """The URL named first (for messages and single-URL uses)."""
        return self.urls[0]

    def plan(self) -> list[str]:
        """The URLs to try for one call, in order: healthy ones from the next in turn,
        then those that failed lately, soonest back first."""
        n = len(self.urls)
        if n == 1:
            return list(self.urls)
        start = self._last if self.sticky else next(self._turn) % n
        rotated = self.urls[start:] + self.urls[:start]
        now = self._clock()
        up = [u for u in rotated if self._down_until.get(u, 0.0) <= now]
        down = sorted((u for u in rotated if u not in up), key=lambda u: self._down_until[u])
        return up + down

    def failed(self, url: str) -> None:
        """An attempt on ``url`` failed in transport: try it last for a while."""
        self._down_until[url] = self._clock() + self.down_for

    def succeeded(self, url: str) -> None:
        self._down_until.pop(url, None)
        self.answered[url] += 1
        self._last = self.urls.index(url)

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > self._clock()


def never_sent(err: BaseException) -> bool:
    """Whether a failed attempt certainly never delivered its request: the connection
    was not opened (refused, unreachable, connect timeout)."""
    return isinstance(err, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def may_retry(*, idempotent: bool, err: BaseException | None = None, status: int = 0) -> bool:
    """Whether a call whose attempt failed with ``err`` (or answered ``status``) may be
    sent to another replica: always when it was never sent; else only when the route
    is safe to repeat and the failure says the replica could not serve it."""
    if err is not None:
        return never_sent(err) or idempotent
    return idempotent and status in RETRYABLE_STATUSES
