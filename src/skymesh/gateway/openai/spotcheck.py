"""Spot-check inference: run a sample of requests again on another operator's node, compare.

After a request is answered, a fraction of the eligible ones (``spot_check_fraction``)
is sent again, in the background, to a compute node of **another operator**
serving the model (chosen at random among those the request's ``regions`` allow).
The check order is asked for the same request (the same body, so the same
``request_sha256`` is signed into both orders), is not reported for metering, and
looks to the node like any other request. The caller's answer is already sent: a
check can neither slow nor change it.

Eligible are only requests whose answer is deterministic:

- ``/v1/embeddings`` with inputs in the body: agree when every pair of vectors has a
  cosine similarity of at least ``spot_check_cosine`` (:func:`embeddings_agree`);
- ``/v1/chat/completions`` at ``temperature`` 0 (greedy decoding): agree when the
  first ``spot_check_chat_tokens`` streamed tokens are the same, or, for shorter
  answers, the whole answers are (:func:`chats_agree`). The check reads no further
  than that, so it costs the other node at most that many tokens.

Sampled chats, stored-input requests (their data key would go to a second node)
and batches are not checked. The outcome, agreement or not, goes to the coordinator
with both signed orders as evidence (``POST /v1/compute/spot-checks``), which keeps
each node's compute reputation and excludes nodes by its rule
(``coordinator/overlay/compute_reputation.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import random
from collections.abc import Awaitable, Callable, Sequence

from skymesh.compute.routing import Candidate, eligible
from skymesh.config import GatewayConfig
from skymesh.gateway.openai.directory import ComputeDirectory, order_of
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import EmbedResponse, SpotCheckReport
from skymesh.wire.signing import Signed

log = logging.getLogger(__name__)

#: Runs a request body on a node under an order: its embeddings, or its first pieces
#: (at most ``keep``) and finish reason (None: cut off at ``keep``).
EmbedOn = Callable[[Candidate, Signed, bytes], Awaitable[EmbedResponse]]
ChatOn = Callable[[Candidate, Signed, bytes, int], Awaitable[tuple[list[str], str | None]]]


def cosine(a: bytes, b: bytes) -> float:
    """Cosine similarity of two float32 vectors as nodes send them (0.0 for a zero one)."""
    x, y = memoryview(a).cast("f"), memoryview(b).cast("f")
    dot = sum(map(operator.mul, x, y))
    norm = math.sqrt(sum(map(operator.mul, x, x)) * sum(map(operator.mul, y, y)))
    return dot / norm if norm > 0 and math.isfinite(dot) else 0.0


def embeddings_agree(a: Sequence[bytes], b: Sequence[bytes], threshold: float) -> bool:
    """As many vectors, of one length, each pair at least ``threshold`` alike (pure)."""
    return len(a) == len(b) and all(
        len(x) == len(y) and len(x) % 4 == 0 and cosine(x, y) >= threshold
        for x, y in zip(a, b, strict=True)
    )


def chats_agree(
    a: Sequence[str], a_finish: str | None, b: Sequence[str], b_finish: str | None, tokens: int
) -> bool:
    """Two greedy answers, as their first pieces (one per token) and finish reasons (pure).

    Both at least ``tokens`` long: their first ``tokens`` pieces are the same. Else
    they must be the same answer, finished the same way.
    """
    if len(a) >= tokens and len(b) >= tokens:
        return list(a[:tokens]) == list(b[:tokens])
    return list(a) == list(b) and a_finish == b_finish


class SpotChecker:
    """Samples requests, runs the checks in the background and reports their outcome."""

    def __init__(
        self,
        config: GatewayConfig,
        directory: ComputeDirectory,
        embed: EmbedOn,
        chat: ChatOn,
        rng: random.Random | None = None,
    ) -> None:
        self.fraction = config.spot_check_fraction
        self.threshold = config.spot_check_cosine
        self.chat_tokens = config.spot_check_chat_tokens
        self.directory = directory
        self._embed = embed
        self._chat = chat
        self.rng = rng or random.SystemRandom()  # a node cannot predict which requests
        self._tasks: set[asyncio.Task[None]] = set()
        # counters, for metrics and tests
        self.agreed = 0
        self.disagreed = 0
        self.skipped = 0  # no node of another operator could run it
        self.failed = 0  # the check or its report did not go through

    def sample(self) -> bool:
        """Whether to check this (eligible) request."""
        return self.fraction > 0 and self.rng.random() < self.fraction

    def embeddings(
        self,
        rpc: RpcClient,
        model: str,
        regions: Sequence[str],
        primary: Candidate,
        order: Signed,
        body: bytes,
        answer: EmbedResponse,
    ) -> None:
        """Check an embeddings answer in the background."""

        async def compare(c: Candidate, check: Signed) -> bool:
            other = await self._embed(c, check, body)
            return await asyncio.to_thread(
                embeddings_agree, answer.embeddings, other.embeddings, self.threshold
            )

        self._spawn(rpc, model, "embedding", regions, primary, order, compare)

    def chat(
        self,
        rpc: RpcClient,
        model: str,
        regions: Sequence[str],
        primary: Candidate,
        order: Signed,
        body: bytes,
        pieces: Sequence[str],
        finish: str | None,
    ) -> None:
        """Check a greedy chat answer (its first pieces, its finish) in the background."""

        async def compare(c: Candidate, check: Signed) -> bool:
            other, other_finish = await self._chat(c, check, body, self.chat_tokens)
            return chats_agree(pieces, finish, other, other_finish, self.chat_tokens)

        self._spawn(rpc, model, "chat", regions, primary, order, compare)

    def _spawn(
        self,
        rpc: RpcClient,
        model: str,
        kind: str,
        regions: Sequence[str],
        primary: Candidate,
        order: Signed,
        compare: Callable[[Candidate, Signed], Awaitable[bool]],
    ) -> None:
        run = self._check(rpc, model, kind, regions, primary, order, compare)
        task = asyncio.get_running_loop().create_task(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(
        self,
        rpc: RpcClient,
        model: str,
        kind: str,
        regions: Sequence[str],
        primary: Candidate,
        order: Signed,
        compare: Callable[[Candidate, Signed], Awaitable[bool]],
    ) -> None:
        try:
            other = await self._other_node(rpc, model, kind, regions, primary)
            if other is None:
                self.skipped += 1
                return
            signed = order_of(order)  # the same request: the same digest and token cap
            checks = await self.directory.orders(
                rpc, model, [other.node_id], signed.max_tokens, signed.request_sha256
            )
            if not checks:
                self.skipped += 1
                return
            agree = await compare(other, checks[0])
            recorded = await rpc.send(
                routes.SPOT_CHECKS, SpotCheckReport(orders=[order, checks[0]], agree=agree)
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a check must never disturb the gateway: count and log it
            self.failed += 1
            log.info("spot check of node %s did not complete: %s", primary.node_id, e)
            return
        if agree:
            self.agreed += 1
        else:
            self.disagreed += 1
            log.warning(
                "spot check: nodes %s and %s answered one %s request differently (reported)",
                primary.node_id,
                other.node_id,
                model,
            )
        if recorded.excluded:
            log.warning("nodes excluded from compute by spot checks: %s", recorded.excluded)

    async def _other_node(
        self, rpc: RpcClient, model: str, kind: str, regions: Sequence[str], primary: Candidate
    ) -> Candidate | None:
        """A random node of another operator that may take the request now, or None."""
        nodes = await self.directory.nodes(rpc)
        mine = next((n.operator for n in nodes if n.node_id == primary.node_id), "")
        if not mine:
            return None
        others = [
            n
            for n in nodes
            if n.operator not in ("", mine)
            and any(m.name == model and m.kind == kind for m in n.advert.models)
        ]
        able = [c for c in self.directory.candidates(others) if eligible(c, model, regions)]
        return self.rng.choice(able) if able else None

    async def flush(self) -> None:
        """Until every check started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
