"""Inference metering and project routing weights on a real coordinator (skymesh.coordinator.inference.metering).

Orders come from the coordinator's own ``/v1/compute/orders`` for nodes that
advertised compute in a signed heartbeat, so every report below names an order
the coordinator really issued (or, in the refusal tests, one it did not).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from skymesh.coordinator.inference.metering import Served
from skymesh.errors import BadRequest, Forbidden, NotFound, Unauthorized
from skymesh.gateway.openai.usage import UsageReporter, UsageTally
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.base import ErrorBody
from skymesh.wire.identity import Identity
from skymesh.wire.inference import (
    ChatEvent,
    ComputeAdvert,
    InferenceOrder,
    InferenceOrderRequest,
    ModelOffer,
)
from skymesh.wire.metering import (
    ProjectRouting,
    RoutingWeights,
    UsageRecorded,
    UsageReport,
    UsageReports,
    UsageSummary,
)
from skymesh.wire.registry import Heartbeat
from skymesh.wire.signing import Signed, sign
from tests.unit.test_coordinator_support import FakeNode, Harness, running

CHAT = ModelOffer(name="chat-m", kind="chat", context_length=2048, price_in=1.0, price_out=2.0)
EMBED = ModelOffer(name="embed-m", kind="embedding", context_length=256, price_in=0.5)


async def compute_node(h: Harness, region: str, *offers: ModelOffer) -> FakeNode:
    node = FakeNode(region=region, operator=f"op-{region}")
    await h.join(node, compute=True)
    beat = Heartbeat(
        node_id=node.id,
        address=node.address,
        capacity_bytes=node.capacity,
        used_bytes=0,
        timestamp=h.clock.now,
        compute=ComputeAdvert(models=list(offers or [CHAT]), cores=2, memory_bytes=1 << 30),
    )
    await h.client.send(routes.HEARTBEAT, sign(node.identity, beat))
    return node


async def order(client: RpcClient, node: FakeNode, model: str = CHAT.name) -> Signed:
    req = InferenceOrderRequest(model=model, node_ids=[node.id], max_tokens=64)
    return (await client.send(routes.INFERENCE_ORDERS, req)).orders[0]


async def report(client: RpcClient, *reports: UsageReport) -> UsageRecorded:
    return await client.send(routes.USAGE_REPORTS, UsageReports(reports=list(reports)))


async def usage(client: RpcClient, query: str = "") -> UsageSummary:
    return await client.request("GET", f"/v1/usage?{query}", UsageSummary)


def used(signed: Signed, prompt: int, completion: int, complete: bool = True) -> UsageReport:
    return UsageReport(
        order=signed, prompt_tokens=prompt, completion_tokens=completion, complete=complete
    )


async def test_an_order_counts_once_at_the_price_signed_into_it(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        node = await compute_node(h, "eu-west")
        signed = await order(h.client, node)
        opened = msgspec.msgpack.decode(signed.body, type=InferenceOrder)
        assert (opened.price_in, opened.price_out, opened.region) == (1.0, 2.0, "eu-west")

        assert await report(h.client, used(signed, 1000, 50)) == UsageRecorded(1, 0)
        # the gateway retries after a lost answer: the same order is not charged twice
        assert await report(h.client, used(signed, 1000, 50)) == UsageRecorded(0, 1)
        assert await report(h.client, used(signed, 9, 9), used(signed, 9, 9)) == UsageRecorded(0, 2)

        (row,) = (await usage(h.admin, "group_by=project,model,node")).rows
        assert (row.project_id, row.project_name) == (h.project.project_id, "alpha")
        assert (row.model, row.node_id, row.region) == (CHAT.name, node.id, "eu-west")
        assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 1000, 50)
        assert row.cost == pytest.approx((1000 * 1.0 + 50 * 2.0) / 1e6)
        assert h.service.inference.meter.recorded == 1


async def test_forged_foreign_and_implausible_reports_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        node = await compute_node(h, "eu-west")
        signed = await order(h.client, node)
        real = msgspec.msgpack.decode(signed.body, type=InferenceOrder)

        # an order this coordinator never signed, though well formed and signed
        forger = Identity.generate()
        forged = sign(forger, msgspec.structs.replace(real, serial="f" * 32))
        with pytest.raises(Forbidden, match="untrusted"):
            await report(h.client, used(forged, 10, 10))
        # the real signature over an altered body (a cheaper price)
        cheaper = msgspec.msgpack.encode(msgspec.structs.replace(real, price_out=0.0))
        tampered = Signed(body=cheaper, signer=signed.signer, signature=signed.signature)
        with pytest.raises(Forbidden, match="bad signature"):
            await report(h.client, used(tampered, 10, 10))
        # another project may not report (or hide) this project's usage
        other = await h.new_project("beta")
        with pytest.raises(Forbidden, match="another project"):
            await report(other, used(signed, 10, 10))
        # more completion tokens than the order allowed; negative counts
        with pytest.raises(BadRequest, match=r"usage report 0: completion_tokens must be 0\.\.64"):
            await report(h.client, used(signed, 10, 65))
        with pytest.raises(BadRequest, match="prompt_tokens"):
            await report(h.client, used(signed, -1, 1))
        # one bad report refuses the whole batch: nothing of it was recorded
        with pytest.raises(BadRequest, match="usage report 1"):
            await report(h.client, used(signed, 1, 1), used(signed, 1, 999))
        # an order reported long after it was issued
        h.clock.advance(86_400 + 1)
        with pytest.raises(Forbidden, match="issued over"):
            await report(h.client, used(signed, 1, 1))
        assert (await usage(h.admin)).rows == []
        with pytest.raises(Unauthorized):
            await report(RpcClient(h.service.url, h.session, {}), used(signed, 1, 1))


async def test_usage_groups_filters_and_is_private_to_each_project(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        west = await compute_node(h, "eu-west", CHAT, EMBED)
        east = await compute_node(h, "us-east", CHAT)
        beta = await h.new_project("beta")
        await report(h.client, used(await order(h.client, west), 100, 10))
        await report(h.client, used(await order(h.client, east), 200, 20, complete=False))
        await report(h.client, used(await order(h.client, west, EMBED.name), 300, 0))
        beta_east, beta_west = await order(beta, east), await order(beta, west)
        h.clock.advance(100)  # reports are dated when recorded
        later = h.clock.now
        await report(beta, used(beta_east, 1000, 60))
        # the admin may report for any project too (the Batch API's path, for one)
        await report(h.admin, used(beta_west, 1, 1))

        by_project = {r.project_name: r for r in (await usage(h.admin)).rows}
        assert by_project["alpha"].prompt_tokens == 600
        assert by_project["alpha"].completion_tokens == 30
        assert by_project["alpha"].requests == 3
        assert by_project["beta"].prompt_tokens == 1001
        alpha_cost = (100 + 200) * 1.0 / 1e6 + (10 + 20) * 2.0 / 1e6 + 300 * 0.5 / 1e6
        assert by_project["alpha"].cost == pytest.approx(alpha_cost)

        by_model = {r.model: r for r in (await usage(h.admin, "group_by=model")).rows}
        assert by_model[CHAT.name].prompt_tokens == 100 + 200 + 1000 + 1
        assert by_model[EMBED.name].prompt_tokens == 300
        assert by_model[EMBED.name].project_id == ""  # not grouped by project

        by_node = {r.node_id: r for r in (await usage(h.admin, "group_by=node")).rows}
        assert by_node[east.id].region == "us-east"
        assert by_node[east.id].prompt_tokens == 1200
        assert by_node[west.id].prompt_tokens == 401

        recent = await usage(h.admin, f"since={later}")
        assert {r.project_name for r in recent.rows} == {"beta"}
        early = await usage(h.admin, f"until={later}")
        assert {r.project_name for r in early.rows} == {"alpha"}
        assert (await usage(h.admin, "project=beta")).rows[0].prompt_tokens == 1001

        # a project's own key sees its own totals, and only those
        (own,) = (await usage(beta)).rows
        assert own.project_name == "beta"
        with pytest.raises(Forbidden, match="only its own"):
            await usage(beta, "project=alpha")

        with pytest.raises(BadRequest, match="group_by"):
            await usage(h.admin, "group_by=colour")
        with pytest.raises(BadRequest, match="since"):
            await usage(h.admin, "since=yesterday")
        with pytest.raises(BadRequest, match="after since"):
            await usage(h.admin, "since=10&until=5")
        with pytest.raises(NotFound, match="no project"):
            await usage(h.admin, "project=gamma")


async def test_record_is_callable_in_process(database_url: str, tmp_path: Path) -> None:
    """The function other coordinator code calls to meter (no HTTP hop)."""
    async with running(tmp_path, database_url=database_url) as h:
        node = await compute_node(h, "eu-west")
        signed = await order(h.client, node)
        assert await h.service.inference.meter.record([used(signed, 5, 6)]) == UsageRecorded(1, 0)
        assert await h.service.inference.meter.record([used(signed, 5, 6)]) == UsageRecorded(0, 1)
        summary = await h.service.inference.meter.summary(group_by=["node"])
        assert [(r.node_id, r.completion_tokens) for r in summary.rows] == [(node.id, 6)]
        # work the caller verified itself (a batch order it signed), once per serial
        batch = Served(
            serial="batch-1",
            project_id=h.project.project_id,
            model=CHAT.name,
            node_id=node.id,
            region="eu-west",
            prompt_tokens=1_000_000,
            completion_tokens=0,
            price_in=0.25,
            price_out=0.0,
            complete=True,
            issued_at=h.clock.now,
        )
        assert await h.service.inference.meter.record_served([batch]) == UsageRecorded(1, 0)
        assert await h.service.inference.meter.record_served([batch]) == UsageRecorded(0, 1)
        (row,) = (await h.service.inference.meter.summary()).rows
        assert row.requests == 2 and row.cost == pytest.approx(0.25 + (5 * 1.0 + 6 * 2.0) / 1e6)


async def test_project_routing_weights_set_show_reset(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        path = "/v1/admin/projects/alpha/routing"
        mine = await h.client.send(routes.OWN_ROUTING, None)
        assert (mine.latency, mine.price, mine.carbon, mine.custom) == (1.0, 1.0, 0.01, False)

        body = msgspec.json.encode(RoutingWeights(carbon=5.0, latency=0.5))
        set_ = await h.admin.request("PUT", path, ProjectRouting, body=body)
        assert (set_.latency, set_.price, set_.carbon, set_.custom) == (0.5, 1.0, 5.0, True)
        # a later change keeps the weights it does not name
        body = msgspec.json.encode(RoutingWeights(price=0.0))
        set_ = await h.admin.request("PUT", path, ProjectRouting, body=body)
        assert (set_.latency, set_.price, set_.carbon) == (0.5, 0.0, 5.0)
        mine = await h.client.send(routes.OWN_ROUTING, None)
        assert (mine.latency, mine.price, mine.carbon, mine.custom) == (0.5, 0.0, 5.0, True)

        await h.new_project("beta")
        listed = await h.admin.send(routes.ALL_ROUTING, None)
        assert [(p.name, p.custom) for p in listed.projects] == [("alpha", True), ("beta", False)]

        with pytest.raises(BadRequest, match="carbon must be finite and >= 0"):
            await h.admin.request(
                "PUT", path, ProjectRouting, body=msgspec.json.encode(RoutingWeights(carbon=-1))
            )
        with pytest.raises(NotFound, match="no project"):
            await h.admin.send(routes.GET_ROUTING, None, params={"project": "nope"})
        with pytest.raises(Unauthorized):  # a project key is not the admin token
            await h.client.request("PUT", path, ProjectRouting, body=b"{}")

        reset = await h.admin.request("DELETE", path, ProjectRouting)
        assert (reset.latency, reset.price, reset.carbon, reset.custom) == (1.0, 1.0, 0.01, False)


# ---------------------------------------------------------------- the gateway's side


async def test_the_gateway_reporter_sends_in_the_background_and_splits_a_refused_batch(
    database_url: str,
    tmp_path: Path,
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        node = await compute_node(h, "eu-west")
        reporter = UsageReporter(backoff=0.001)
        orders = [await order(h.client, node) for _ in range(3)]
        reporter.report(h.client, orders[0], 10, 1)
        reporter.report(h.client, orders[1], 20, 2, complete=False)
        reporter.report(h.client, orders[1], 20, 2)  # a repeat: counted once by the coordinator
        reporter.report(h.client, orders[2], 30, 999)  # over the order's cap: refused alone
        await reporter.flush()
        assert (reporter.sent, reporter.dropped) == (3, 1)
        (row,) = (await usage(h.admin)).rows
        assert (row.requests, row.prompt_tokens, row.completion_tokens) == (2, 30, 3)

        # the coordinator unreachable: retried with backoff, then given up and counted
        gone = RpcClient("http://127.0.0.1:9", h.session, dict(h.client.headers))
        reporter.report(gone, orders[2], 1, 1)
        await reporter.flush()
        assert reporter.dropped == 2
        await reporter.close()


async def test_the_reporter_queue_is_bounded() -> None:
    reporter = UsageReporter(limit=2)
    order = Signed(body=b"", signer=b"", signature=b"")
    async with aiohttp.ClientSession() as session:
        rpc = RpcClient("http://127.0.0.1:9", session, {})
        for _ in range(3):
            reporter.report(rpc, order, 1, 1)  # never blocks the request that served it
        assert reporter.dropped == 1
        await reporter.close(timeout=0)  # stops even with reports it could not send


async def test_a_tally_counts_what_a_broken_stream_produced() -> None:
    async def stream(*events: ChatEvent) -> AsyncGenerator[ChatEvent, None]:
        for e in events:
            yield e

    broken = UsageTally()
    error = ChatEvent(error=ErrorBody(code="InternalError", message="boom"))
    seen = [
        e async for e in broken.watch(stream(ChatEvent(delta="Hel"), ChatEvent(delta="lo"), error))
    ]
    assert len(seen) == 3
    assert (broken.prompt_tokens, broken.completion_tokens, broken.complete) == (0, 2, False)

    whole = UsageTally()
    done = ChatEvent(finish_reason="stop", prompt_tokens=12, completion_tokens=3)
    async for _ in whole.watch(stream(ChatEvent(delta="a"), ChatEvent(delta="b"), done)):
        pass
    assert (whole.prompt_tokens, whole.completion_tokens, whole.complete) == (12, 3, True)
