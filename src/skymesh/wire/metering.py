"""The metering protocol: inference usage reports and summaries, per-project routing weights."""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.signing import Signed


class UsageReport(Base, frozen=True):
    """The tokens one signed inference order served, as its node answered them.

    ``order`` is the :class:`InferenceOrder` exactly as the coordinator signed it:
    the coordinator records usage only for orders it issued, and each order once.
    ``complete`` is False when the answer broke off (the counts are then what the
    gateway saw: one completion token per streamed piece, no prompt tokens).
    """

    order: Signed  # Signed[InferenceOrder]
    prompt_tokens: int
    completion_tokens: int
    complete: bool = True


class UsageReports(Base, frozen=True):
    """``POST /v1/compute/usage`` (project key, or admin): up to 500 reports at once."""

    reports: list[UsageReport]


class UsageRecorded(Base, frozen=True):
    """How many reports were new, and how many named an order already recorded."""

    recorded: int
    duplicates: int


class UsageRow(Base, frozen=True):
    """Totals of one group; the fields not grouped by are empty."""

    project_id: str = ""
    project_name: str = ""
    model: str = ""
    node_id: str = ""
    region: str = ""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # USD, at the prices signed into each order


class UsageSummary(Base, frozen=True):
    """``GET /v1/usage?project=&since=&until=&group_by=`` (admin, or a project for itself)."""

    group_by: list[str]  # of "project", "model", "node"
    since: float
    until: float
    rows: list[UsageRow]


class RoutingWeights(Base, frozen=True):
    """Routing weights to set for a project (``skymesh.compute.routing.Weights``);
    a weight left out keeps its current value."""

    latency: float | None = None
    price: float | None = None
    carbon: float | None = None


class ProjectRouting(Base, frozen=True):
    """A project's default routing weights: ``GET /v1/projects/self/routing`` (project
    key), ``GET|PUT|DELETE /v1/admin/projects/{project}/routing`` (admin)."""

    project_id: str
    name: str
    latency: float
    price: float
    carbon: float
    custom: bool  # False: the network's defaults


class ProjectRoutingList(Base, frozen=True):
    """``GET /v1/admin/routing`` (admin): every project's weights."""

    projects: list[ProjectRouting]
