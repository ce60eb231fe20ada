"""Inference metering (tokens per project, model and node, priced) and per-project routing weights.

Who may report: whoever holds the signed :class:`InferenceOrder` a node served
(the gateway, with the project's key; the admin for any project). A report
carries the order exactly as this coordinator signed it, so usage is recorded
only for orders this coordinator issued, at the prices and region signed into
the order, and each order at most once (its serial is the row's key: a resent
report is a duplicate, not a second charge). Completion tokens cannot exceed
the order's cap. The counts themselves are the node's answer as the gateway
relayed it; a node-signed receipt would bind them to the node too (not yet).

| route | auth | request -> response |
|---|---|---|
| POST /v1/compute/usage | project (its own orders) or admin | UsageReports -> UsageRecorded |
| GET /v1/usage?project=&since=&until=&group_by= | admin, or a project for itself (403 for any other, known or not) | UsageSummary |
| GET /v1/projects/self/routing | project | ProjectRouting |
| GET /v1/admin/routing | admin | ProjectRoutingList |
| GET, PUT, DELETE /v1/admin/projects/{project}/routing | admin | (RoutingWeights ->) ProjectRouting |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from skymesh.compute.routing import Weights
from skymesh.coordinator.auth import find_project
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import inference_usage, project_routing, projects
from skymesh.coordinator.endpoints import Call, RouteTable, seconds_param
from skymesh.coordinator.keyring import Keyring
from skymesh.errors import BadRequest, Forbidden, NotFound
from skymesh.wire import routes
from skymesh.wire.inference import InferenceOrder
from skymesh.wire.metering import (
    ProjectRouting,
    ProjectRoutingList,
    RoutingWeights,
    UsageRecorded,
    UsageReport,
    UsageReports,
    UsageRow,
    UsageSummary,
)

MAX_REPORTS = 500  # per POST
MAX_PROMPT_TOKENS = 1_000_000  # as the coordinator's order cap: more is not a real request
REPORT_WINDOW = 86_400.0  # seconds after issue within which an order's usage is accepted
GROUPS = ("project", "model", "node")
_GROUP_COLUMNS = {
    "project": (inference_usage.c.project_id,),
    "model": (inference_usage.c.model,),
    "node": (inference_usage.c.node_id, inference_usage.c.region),
}


@dataclass(frozen=True)
class Served:
    """One unit of served inference to meter: an order's serial and what it produced."""

    serial: str  # unique per order: the key that makes a report count once
    project_id: str
    model: str
    node_id: str
    region: str
    prompt_tokens: int
    completion_tokens: int
    price_in: float  # USD per 1M tokens, as offered when the order was signed
    price_out: float
    complete: bool
    issued_at: float


def parse_group_by(value: str) -> list[str]:
    """``"model,node"`` -> ``["model", "node"]``; BadRequest names the unknown ones."""
    names = [g.strip() for g in value.split(",") if g.strip()] or ["project"]
    unknown = [g for g in names if g not in GROUPS]
    if unknown:
        raise BadRequest(f"group_by: unknown {unknown}; use any of {', '.join(GROUPS)}")
    return list(dict.fromkeys(names))


class Meter:
    """Usage records and project routing weights over the metadata database."""

    def __init__(
        self, db: Database, keyring: Keyring, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.keyring = keyring  # usage is counted for orders any current coordinator signed
        self.clock = clock
        self.recorded = 0  # counters, for a metrics endpoint to read
        self.duplicates = 0

    # ------------------------------------------------------------ usage

    async def check(self, report: UsageReport, project_id: str | None) -> InferenceOrder:
        """The report's order, verified: signed by a current coordinator key, of
        ``project_id`` (None: any), plausible."""
        order = await self.keyring.open(report.order, InferenceOrder)
        if project_id is not None and order.project_id != project_id:
            raise Forbidden("the inference order belongs to another project")
        if self.clock() - order.issued_at > REPORT_WINDOW:
            raise Forbidden(f"the inference order was issued over {REPORT_WINDOW:.0f} s ago")
        if not 0 <= report.prompt_tokens <= MAX_PROMPT_TOKENS:
            raise BadRequest(f"prompt_tokens must be 0..{MAX_PROMPT_TOKENS}")
        if not 0 <= report.completion_tokens <= order.max_tokens:
            raise BadRequest(f"completion_tokens must be 0..{order.max_tokens} under this order")
        return order

    async def record(
        self, reports: Sequence[UsageReport], project_id: str | None = None
    ) -> UsageRecorded:
        """Record served inference orders (all or none); ``project_id`` None: any project."""
        if len(reports) > MAX_REPORTS:
            raise BadRequest(f"send at most {MAX_REPORTS} usage reports at once")
        served = []
        for i, report in enumerate(reports):
            try:
                order = await self.check(report, project_id)
            except (BadRequest, Forbidden) as e:
                raise type(e)(f"usage report {i}: {e.message}") from e
            served.append(
                Served(
                    serial=order.serial,
                    project_id=order.project_id,
                    model=order.model,
                    node_id=order.node_id,
                    region=order.region,
                    prompt_tokens=report.prompt_tokens,
                    completion_tokens=report.completion_tokens,
                    price_in=order.price_in,
                    price_out=order.price_out,
                    complete=report.complete,
                    issued_at=order.issued_at,
                )
            )
        return await self.record_served(served)

    async def record_served(self, served: Sequence[Served]) -> UsageRecorded:
        """Record work already verified by the caller, each ``serial`` at most once.

        The one function coordinator code calls to meter tokens: :meth:`record` after
        checking a signed inference order, or the Batch API for a batch order it
        signed (its serial, its project, the tokens its node reported).
        """
        now = self.clock()
        rows = {
            s.serial: {
                **asdict(s),
                "cost": (s.prompt_tokens * s.price_in + s.completion_tokens * s.price_out) / 1e6,
                "recorded_at": now,
            }
            for s in served
        }

        def txn(conn: sa.Connection) -> int:
            known = set(
                conn.execute(
                    sa.select(inference_usage.c.serial).where(
                        inference_usage.c.serial.in_(list(rows))
                    )
                ).scalars()
            )
            fresh = [r for s, r in rows.items() if s not in known]
            if fresh:
                conn.execute(inference_usage.insert(), fresh)
            return len(fresh)

        try:
            fresh = await self.db.write(txn) if rows else 0
        except sa.exc.IntegrityError:  # a concurrent replica recorded one of them first
            fresh = await self.db.write(txn)
        duplicates = len(served) - fresh
        self.recorded += fresh
        self.duplicates += duplicates
        return UsageRecorded(recorded=fresh, duplicates=duplicates)

    async def summary(
        self,
        *,
        project_id: str | None = None,
        since: float = 0.0,
        until: float = math.inf,
        group_by: Sequence[str] = ("project",),
    ) -> UsageSummary:
        """Totals over ``[since, until)``, grouped by any of project, model and node."""
        u = inference_usage
        keys = [c for g in group_by for c in _GROUP_COLUMNS[g]]
        with_name = "project" in group_by
        columns = [
            *keys,
            *([projects.c.name] if with_name else []),
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(u.c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(u.c.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(u.c.cost), 0.0).label("cost"),
        ]
        source = u.outerjoin(projects, projects.c.project_id == u.c.project_id) if with_name else u
        query = sa.select(*columns).select_from(source).where(u.c.recorded_at >= since)
        if math.isfinite(until):
            query = query.where(u.c.recorded_at < until)
        if project_id is not None:
            query = query.where(u.c.project_id == project_id)
        group = [*keys, *([projects.c.name] if with_name else [])]
        query = query.group_by(*group).order_by(*keys)

        def txn(conn: sa.Connection) -> list[UsageRow]:
            out = []
            for row in conn.execute(query).mappings():
                out.append(
                    UsageRow(
                        project_id=row.get("project_id") or "",
                        project_name=row.get("name") or "",
                        model=row.get("model") or "",
                        node_id=row.get("node_id") or "",
                        region=row.get("region") or "",
                        requests=int(row["requests"]),
                        prompt_tokens=int(row["prompt_tokens"]),
                        completion_tokens=int(row["completion_tokens"]),
                        cost=float(row["cost"]),
                    )
                )
            return out

        rows = await self.db.read(txn)
        return UsageSummary(
            group_by=list(group_by),
            since=since,
            until=until if math.isfinite(until) else 0.0,
            rows=rows,
        )

    # ------------------------------------------------------------ routing weights

    async def resolve_project(self, project: str) -> str:
        """A project id from its id or its (unique) name."""
        return await self.db.read(lambda conn: find_project(conn, project))

    async def is_own(self, project_id: str, project: str) -> bool:
        """Whether ``project`` (an id or a name) names ``project_id`` itself; nothing is
        looked up beyond that project, so the answer says nothing of any other."""
        if project == project_id:
            return True
        name = await self.db.read(
            lambda conn: conn.execute(
                sa.select(projects.c.name).where(projects.c.project_id == project_id)
            ).scalar_one_or_none()
        )
        return name == project

    async def routing(self, project_id: str | None = None) -> list[ProjectRouting]:
        """Weights of one project (or of every project), defaults where none were set."""
        query = sa.select(
            projects.c.project_id,
            projects.c.name,
            project_routing.c.latency,
            project_routing.c.price,
            project_routing.c.carbon,
        ).select_from(
            projects.outerjoin(
                project_routing, project_routing.c.project_id == projects.c.project_id
            )
        )
        if project_id is not None:
            query = query.where(projects.c.project_id == project_id)
        query = query.order_by(projects.c.name, projects.c.project_id)
        default = Weights()

        def txn(conn: sa.Connection) -> list[ProjectRouting]:
            return [
                ProjectRouting(
                    project_id=r.project_id,
                    name=r.name,
                    latency=default.latency if r.latency is None else r.latency,
                    price=default.price if r.price is None else r.price,
                    carbon=default.carbon if r.carbon is None else r.carbon,
                    custom=r.latency is not None,
                )
                for r in conn.execute(query)
            ]

        found = await self.db.read(txn)
        if project_id is not None and not found:
            raise NotFound(f"no project {project_id!r}")
        return found

    async def set_routing(self, project_id: str, update: RoutingWeights) -> ProjectRouting:
        """Set some of a project's weights; those left out keep their current values."""
        (current,) = await self.routing(project_id)
        merged = {
            "latency": current.latency,
            "price": current.price,
            "carbon": current.carbon,
            **{k: v for k, v in _fields(update).items() if v is not None},
        }
        try:
            weights = Weights.parse(merged)
        except ValueError as e:
            raise BadRequest(str(e)) from e
        row = {"project_id": project_id, **asdict(weights), "updated_at": self.clock()}

        def txn(conn: sa.Connection) -> None:
            conn.execute(project_routing.delete().where(project_routing.c.project_id == project_id))
            conn.execute(project_routing.insert(), row)

        await self.db.write(txn)
        return (await self.routing(project_id))[0]

    async def reset_routing(self, project_id: str) -> ProjectRouting:
        """Back to the network's default weights."""
        await self.db.write(
            lambda conn: conn.execute(
                project_routing.delete().where(project_routing.c.project_id == project_id)
            )
        )
        return (await self.routing(project_id))[0]


def _fields(update: RoutingWeights) -> dict[str, float | None]:
    return {"latency": update.latency, "price": update.price, "carbon": update.carbon}


def add_metering_routes(table: RouteTable, meter: Meter) -> None:
    async def report(call: Call, body: UsageReports) -> UsageRecorded:
        return await meter.record(body.reports, None if call.admin else call.project_id)

    async def usage(call: Call, _req: None) -> UsageSummary:
        query = call.request.query
        wanted = query.get("project", "")
        if call.admin:
            project_id = await meter.resolve_project(wanted) if wanted else None
        else:
            # one answer for a foreign project and for none: a key learns nothing of others
            if wanted and not await meter.is_own(call.project_id, wanted):
                raise Forbidden("a project key sees only its own usage")
            project_id = call.project_id
        since = seconds_param(call.request, "since", 0.0)
        until = seconds_param(call.request, "until", math.inf)
        if until <= since:
            raise BadRequest("until must be after since")
        group_by = parse_group_by(query.get("group_by", "project"))
        return await meter.summary(
            project_id=project_id, since=since, until=until, group_by=group_by
        )

    async def own_routing(call: Call, _req: None) -> ProjectRouting:
        return (await meter.routing(call.project_id))[0]

    async def all_routing(_call: Call, _req: None) -> ProjectRoutingList:
        return ProjectRoutingList(projects=await meter.routing())

    async def project_of(call: Call) -> str:
        return await meter.resolve_project(call.request.match_info["project"])

    async def get_routing(call: Call, _req: None) -> ProjectRouting:
        return (await meter.routing(await project_of(call)))[0]

    async def set_routing(call: Call, update: RoutingWeights) -> ProjectRouting:
        return await meter.set_routing(await project_of(call), update)

    async def reset_routing(call: Call, _req: None) -> ProjectRouting:
        return await meter.reset_routing(await project_of(call))

    table.add(routes.USAGE_REPORTS, report)
    table.add(routes.USAGE, usage)
    table.add(routes.OWN_ROUTING, own_routing)
    table.add(routes.ALL_ROUTING, all_routing)
    table.add(routes.GET_ROUTING, get_routing)
    table.add(routes.SET_ROUTING, set_routing)
    table.add(routes.RESET_ROUTING, reset_routing)
