"""Prometheus metrics shared by every role: one registry per service, and serving it.

Each role's service builds its own :func:`registry` (never prometheus_client's global
one: tests run several roles in one process) holding the process's CPU, memory and
open files, and adds its own metrics to it. Counters that a module already keeps as
plain attributes are read at scrape time by a :class:`Collect` rather than counted
twice, as are the background loops (:class:`LoopCollector` over ``DrivenLoop``).

Who may scrape: the coordinator serves ``GET /metrics`` on its API port to the
admin token, as its other admin routes; the gateway and the node have no such
credential, so they serve it on a listener of their own (:class:`MetricsListener`,
``metrics_address``), off unless configured. docs/operations.md "Metrics".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from skymesh.config import host_port
from skymesh.loops import DrivenLoop

log = logging.getLogger(__name__)

#: What ``generate_latest`` writes: the text exposition format 0.0.4.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PATH = "/metrics"

#: Latency buckets (seconds) for requests and transfers: 1 ms to a minute.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip


def registry() -> CollectorRegistry:
    """A service's own registry, with this process's CPU, memory and open files."""
    reg = CollectorRegistry()
    ProcessCollector(registry=reg)
    return reg


class Children:
    """A labelled metric's children by their label values, found once each: ``labels()``
    validates and locks on every call, which the per-request counters of a busy role
    (thousands a second) need not pay again. For counters and histograms whose
    children are never removed."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._found: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._found.get(values)
        if child is None:
            child = self._found[values] = self.metric.labels(*values)
        return child


def exposition(reg: CollectorRegistry) -> bytes:
    """The registry's metrics in the text format."""
    return generate_latest(reg)


def response(reg: CollectorRegistry) -> web.Response:
    """An aiohttp answer with the registry's metrics."""
    return web.Response(body=exposition(reg), headers={"Content-Type": CONTENT_TYPE})


class Collect:
    """A collector whose ``collect`` is the given function, run at every scrape."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    """A counter without labels, read from a plain attribute (``name`` without ``_total``)."""
    return CounterMetricFamily(name, doc, value=value)


def labelled_counter(
    name: str, doc: str, label: str, values: dict[str, int] | dict[str, float]
) -> CounterMetricFamily:
    """A counter with one label, one sample per entry of ``values``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class LoopCollector:
    """Runs, failures and the last run of each background loop, read from the loops."""

    def __init__(self, loops: Callable[[], Iterable[DrivenLoop]]) -> None:
        self._loops = loops

    def collect(self) -> Iterable[Metric]:
        runs = CounterMetricFamily(
            "skymesh_loop_runs", "Completed steps of a background loop.", labels=["loop"]
        )
        failures = CounterMetricFamily(
            "skymesh_loop_failures",
            "Steps of a background loop that raised an error.",
            labels=["loop"],
        )
        last = GaugeMetricFamily(
            "skymesh_loop_last_run_timestamp_seconds",
            "Unix time the loop's last step completed (absent before its first).",
            labels=["loop"],
        )
        for loop in self._loops():
            runs.add_metric([loop.name], loop.runs)
            failures.add_metric([loop.name], loop.failures)
            if loop.last_run_at is not None:
                last.add_metric([loop.name], loop.last_run_at)
        return [runs, failures, last]


class MetricsListener:
    """``GET /metrics`` on an address of its own (the gateway's and the node's).

    No credential is asked: whoever reaches the address may scrape, so it listens on
    loopback or an operator's monitoring network, never the public API port.
    """

    def __init__(self, reg: CollectorRegistry, address: str, what: str) -> None:
        self.host, self.port = host_port(address, what)
        self.registry = reg
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    async def start(self) -> None:
        reg = self.registry

        async def metrics(_request: web.Request) -> web.Response:
            return response(reg)

        app = web.Application()
        app.router.add_get(PATH, metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("metrics at %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
