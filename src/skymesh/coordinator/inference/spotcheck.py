"""Spot-check reports: a gateway ran one request on two nodes and says whether they agreed.

The report carries both :class:`~skymesh.wire.inference.InferenceOrder` s exactly
as this coordinator signed them. It is evidence only when both are ours, of the
caller's project, for one request (the same ``request_sha256`` and model, signed
into both), recent (issued within :data:`REPORT_WINDOW`), and name two nodes of
two different operators; each order is evidence once. The coordinator never sees
the answers, so it takes the gateway's word on agreement: the compute reputation
(``overlay.compute_reputation``) is built so that such words, or one lying node,
cannot exclude an honest node on their own.

| route | auth | request -> response |
|---|---|---|
| POST /v1/compute/spot-checks | project | SpotCheckReport -> SpotCheckRecorded |
"""

from __future__ import annotations

from collections.abc import Callable

from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.overlay.compute_reputation import ComputeReputationBook, SpotCheck
from skymesh.coordinator.overlay.registry import Registry
from skymesh.errors import BadRequest, Forbidden
from skymesh.wire import routes
from skymesh.wire.inference import InferenceOrder, SpotCheckRecorded, SpotCheckReport

#: Seconds after issue within which an order may be reported (a check runs right after
#: its request; orders live a minute).
REPORT_WINDOW = 3600.0


async def verify_report(
    report: SpotCheckReport,
    project_id: str,
    keyring: Keyring,
    registry: Registry,
    now: float,
) -> SpotCheck:
    """The report as evidence, or :class:`Forbidden` / :class:`BadRequest` saying why not."""
    if len(report.orders) != 2:
        raise BadRequest("a spot check report carries exactly two inference orders")
    first, second = [await keyring.open(signed, InferenceOrder) for signed in report.orders]
    for order in (first, second):
        if order.project_id != project_id:
            raise Forbidden("an inference order of the report belongs to another project")
        if not 0 <= now - order.issued_at <= REPORT_WINDOW:
            raise Forbidden(
                f"an inference order was not issued within the last {REPORT_WINDOW:.0f} s"
            )
    if (
        not first.request_sha256
        or first.request_sha256 != second.request_sha256
        or first.model != second.model
    ):
        raise Forbidden("the two inference orders were not issued for the same request")
    if first.node_id == second.node_id:
        raise BadRequest("the two inference orders name the same node")
    nodes = await registry.lookup([first.node_id, second.node_id])
    if len(nodes) != 2:
        raise BadRequest("a node of the report is not registered")
    a, b = nodes[first.node_id].operator, nodes[second.node_id].operator
    if a == b:
        raise BadRequest(
            f"both nodes belong to operator {a!r}: a spot check compares two operators"
        )
    return SpotCheck(
        serials=(first.serial, second.serial),
        node_ids=(first.node_id, second.node_id),
        operators=(a, b),
        project_id=project_id,
        agree=report.agree,
    )


def add_spot_check_routes(
    table: RouteTable,
    standing: ComputeReputationBook,
    keyring: Keyring,
    registry: Registry,
    clock: Callable[[], float],
) -> None:
    async def report(call: Call, req: SpotCheckReport) -> SpotCheckRecorded:
        check = await verify_report(req, call.project_id, keyring, registry, clock())
        recorded, excluded = await standing.record(check)
        return SpotCheckRecorded(recorded=recorded, excluded=excluded)

    table.add(routes.SPOT_CHECKS, report)
