"""Usage reports from the gateway to the coordinator, off the request path.

Each served inference order (embeddings, chat, streamed or not, a stream that
broke midway) becomes a :class:`UsageReport` carrying the signed order itself,
so the coordinator records it only for an order it issued, and only once.
Reporting must not add latency to the answer, so :meth:`UsageReporter.report`
only queues; one background task sends what has queued in batches per project
key. The queue is bounded (a coordinator outage costs memory up to ``limit``
reports, then reports are dropped and counted); a failed send is retried with
backoff, which is safe because the coordinator counts each order once.

The Batch API meters its requests the same way: ``gateway.usage.report(rpc,
order, prompt_tokens, completion_tokens)``, or :class:`UsageTally` over a chat
event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from skymesh.errors import SkymeshError, Unavailable
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import ChatEvent
from skymesh.wire.metering import UsageReport, UsageReports
from skymesh.wire.signing import Signed

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
BATCH = 200  # reports per POST (the coordinator takes up to 500)
RETRIES = 4
BACKOFF = 0.5  # seconds, doubled per retry


class UsageTally:
    """What a node's chat stream produced, counted as the events pass by.

    The node sends exact counts in its last event; a stream that breaks before
    it counts one completion token per text piece seen and no prompt tokens (the
    node has not said them). The first ``keep`` text pieces and the finish reason
    are kept (a spot check compares them).
    """

    def __init__(self, keep: int = 0) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.complete = False
        self.events = 0
        self.keep = keep
        self.pieces: list[str] = []
        self.finish_reason: str | None = None

    def add(self, event: ChatEvent) -> None:
        self.events += 1
        if event.finish_reason is not None:
            self.prompt_tokens = event.prompt_tokens
            self.completion_tokens = event.completion_tokens
            self.complete = True
            self.finish_reason = event.finish_reason
        elif event.delta:
            self.completion_tokens += 1
            if len(self.pieces) < self.keep:
                self.pieces.append(event.delta)

    async def watch(
        self, events: AsyncGenerator[ChatEvent, None]
    ) -> AsyncGenerator[ChatEvent, None]:
        """``events``, counted; closing this closes ``events`` (the node connection)."""
        try:
            async for event in events:
                self.add(event)
                yield event
        finally:
            await events.aclose()


class UsageReporter:
    """A bounded queue of usage reports and the task that sends them."""

    def __init__(
        self, *, limit: int = QUEUE_LIMIT, batch: int = BATCH, backoff: float = BACKOFF
    ) -> None:
        self.batch = batch
        self.backoff = backoff
        self._queue: asyncio.Queue[tuple[RpcClient, UsageReport]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # reports the coordinator took (recorded or duplicate)
        self.dropped = 0  # queue full, or given up after retries / refused

    def report(
        self,
        rpc: RpcClient,
        order: Signed,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        complete: bool = True,
    ) -> None:
        """Queue one served order's usage; never blocks and never raises."""
        item = UsageReport(
            order=order,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            complete=complete,
        )
        try:
            self._queue.put_nowait((rpc, item))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("usage queue full (%d): a usage report is dropped", self._queue.maxsize)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Until everything queued so far was sent (or given up)."""
        await self._queue.join()

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            log.warning("usage reports still queued at shutdown: %d dropped", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < self.batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            groups: dict[int, tuple[RpcClient, list[UsageReport]]] = {}
            for rpc, report in items:
                groups.setdefault(id(rpc), (rpc, []))[1].append(report)
            try:
                for rpc, reports in groups.values():
                    try:
                        await self._send(rpc, reports)
                    except Exception:  # a bug must not end metering for the gateway's life
                        self.dropped += len(reports)
                        log.exception("sending %d usage reports failed", len(reports))
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _send(self, rpc: RpcClient, reports: list[UsageReport]) -> None:
        delay = self.backoff
        for attempt in range(RETRIES + 1):
            try:
                await rpc.send(routes.USAGE_REPORTS, UsageReports(reports=reports))
                self.sent += len(reports)
                return
            except SkymeshError as e:
                if isinstance(e, Unavailable) or e.status >= 500:  # away or failing: later
                    if attempt == RETRIES:
                        self.dropped += len(reports)
                        log.warning("usage reports not sent (%d dropped): %s", len(reports), e)
                        return
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                if len(reports) > 1:  # one bad report refuses the batch: send each alone
                    for one in reports:
                        await self._send(rpc, [one])
                    return
                self.dropped += 1
                log.warning("usage report refused by the coordinator: %s", e)
                return
