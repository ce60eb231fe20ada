"""Loop leases as the admin API shows them: which coordinator runs each background loop."""

from __future__ import annotations

from skymesh.wire.base import Base


class LeaseInfo(Base, frozen=True):
    """One background loop's lease; the run counts are the answering coordinator's."""

    name: str  # the loop: "audit", "gc", "repair", ...
    holder: str  # "<node id>/<suffix>" of one coordinator process; "" once released
    acquired_at: float  # coordinator time, unix seconds
    expires_at: float
    held: bool  # someone holds it now (a holder, not expired)
    held_here: bool  # the answering coordinator holds it and runs the loop
    runs: int | None = None  # steps the answering coordinator ran; None: it does not run it
    last_run_at: float | None = None  # when its last step there ended (its wall clock)
    failures: int = 0  # steps that raised there
    last_error: str = ""  # the last one's exception ("Type: message")
    last_error_at: float | None = None  # when (its wall clock); after last_run_at: failing now


class LeaseList(Base, frozen=True):
    """``GET /v1/admin/leases``: every lease, from the database, by loop name."""

    coordinator: str  # the answering coordinator's holder id
    generated_at: float
    leases: list[LeaseInfo]
