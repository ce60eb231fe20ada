"""Data residency: a bucket's location constraint keeps every piece on nodes inside it.

A bucket's ``region`` column holds the constraint it was created with (S3's
``LocationConstraint``); empty means anywhere. A constraint covers

- the regions the coordinator's ``jurisdictions`` map lists under that name
  (``eu = ["eu-west", "eu-central"]``), when the map names it; otherwise
- the region of that exact name and every region whose name extends it with a
  dash: ``eu`` covers ``eu-west`` and ``eu-central``, ``eu-west`` covers
  ``eu-west-2``.

The rule is evaluated against node regions each time (a new region under ``eu-``
joins the ``eu`` group without a config change), and upload placement, repair and
drain all filter nodes through :meth:`Residency.allows`, so no path can put a
piece outside. When the residency holds too few nodes, placement refuses; it never
widens. The functions over node records are pure; the two reads at the bottom are
the only way the rest of the coordinator learns a bucket's or a segment's
constraint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets, objects, pending_streams
from skymesh.errors import BadRequest

Jurisdictions = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Residency:
    """Where a bucket's pieces may live: ``constraint`` "" is anywhere."""

    constraint: str = ""
    members: frozenset[str] | None = None  # from the jurisdictions map; None: the name rule

    @property
    def anywhere(self) -> bool:
        return not self.constraint

    def allows(self, region: str) -> bool:
        if not self.constraint:
            return True
        if self.members is not None:
            return region in self.members
        return region == self.constraint or region.startswith(self.constraint + "-")

    def describe(self) -> str:
        """For error messages: the constraint and what it covers."""
        if self.members is not None:
            return f"{self.constraint!r} (regions {', '.join(sorted(self.members))})"
        return f"{self.constraint!r} (region {self.constraint} and {self.constraint}-*)"


ANYWHERE = Residency()


def residency(constraint: str, jurisdictions: Jurisdictions) -> Residency:
    """The residency a bucket's stored constraint stands for."""
    if not constraint:
        return ANYWHERE
    group = jurisdictions.get(constraint)
    return Residency(constraint, None if group is None else frozenset(group))


def check_constraint(
    constraint: str, known_regions: Iterable[str], jurisdictions: Jurisdictions
) -> None:
    """Refuse a constraint that covers no region a node has registered in, at CreateBucket.

    A typo (or an AWS region name this network does not have) would otherwise make
    a bucket whose every upload fails. A group the operator configured is accepted
    before its nodes join.
    """
    if not constraint or constraint in jurisdictions:
        return
    where = residency(constraint, jurisdictions)
    regions = set(known_regions)
    if any(where.allows(r) for r in regions):
        return
    known = sorted(regions | set(jurisdictions))
    raise BadRequest(
        f"location constraint {constraint!r} names no region with nodes in this network;"
        f" use one of: {', '.join(known) or '(no nodes have joined yet)'}, a prefix group"
        " such as 'eu' for every 'eu-*' region, or leave it empty for anywhere",
        code="InvalidLocationConstraint",
    )


# ---------------------------------------------------------------- reads


def bucket_placement(conn: sa.Connection, bucket: str) -> tuple[str, str | None]:
    """``bucket``'s location constraint and its tags as stored (JSON; None: never set),
    in one read: upload placement needs both (the tags hold the placement preference)."""
    row = conn.execute(
        sa.select(buckets.c.region, buckets.c.tags).where(buckets.c.name == bucket)
    ).one_or_none()
    return ("", None) if row is None else (row.region or "", row.tags)


def stream_constraints(conn: sa.Connection, stream_ids: Sequence[str]) -> dict[str, str]:
    """Location constraint of the bucket each stream (committed or pending) belongs to.

    Streams of buckets with no constraint, and unknown streams, are left out.
    """
    out: dict[str, str] = {}
    for table in (objects, pending_streams):
        rows = conn.execute(
            sa.select(table.c.stream_id, buckets.c.region)
            .select_from(table.join(buckets, buckets.c.name == table.c.bucket))
            .where(table.c.stream_id.in_(list(stream_ids)), buckets.c.region != "")
        )
        out.update({r.stream_id: r.region for r in rows})
    return out
