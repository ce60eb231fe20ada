"""Reputation maths (pure) and the one health rule, table-tested."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skymesh.coordinator.durability.health import healthy, needs_move
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import (
    AuditOutcome,
    Reputation,
    ReputationParams,
    apply_outcome,
    apply_reachable,
    suspended,
)

P = ReputationParams()
S, F, U = AuditOutcome.SUCCESS, AuditOutcome.FAILURE, AuditOutcome.UNKNOWN


def _run(outcomes: list[AuditOutcome], params: ReputationParams = P) -> Reputation:
    rep = Reputation.new("n", params)
    for i, o in enumerate(outcomes):
        rep = apply_outcome(rep, o, float(i), params)
    return rep


@pytest.mark.parametrize(
    ("outcomes", "disqualified"),
    [
        ([S] * 100, False),
        ([F] * 40, False),  # 0.999**40 = 0.9608
        ([F] * 41, True),  # 0.999**41 = 0.9598 < 0.96
        ([S] * 1000 + [F] * 40, False),  # old successes decay: no credit beyond the start value
        ([F] * 20 + [S] * 50 + [F] * 20, False),
        ([U] * 500, False),  # never answering never disqualifies by itself
    ],
)
def test_disqualification(outcomes: list[AuditOutcome], disqualified: bool) -> None:
    assert _run(outcomes).disqualified is disqualified


def test_scores_fall_with_failures_and_recover() -> None:
    rep = _run([F] * 10)
    assert rep.audit_score == pytest.approx(0.999**10)
    better = apply_outcome(rep, S, 11.0, P)
    assert better.audit_score > rep.audit_score


def test_disqualification_is_permanent() -> None:
    rep = _run([F] * 41)
    at = rep.disqualified_at
    rep = _run_from(rep, [S] * 500)
    assert rep.disqualified and rep.disqualified_at == at


def _run_from(rep: Reputation, outcomes: list[AuditOutcome]) -> Reputation:
    for o in outcomes:
        rep = apply_outcome(rep, o, 99.0, P)
    return rep


def test_unknown_weighs_apart_from_failures() -> None:
    rep = _run([U] * 20)
    assert rep.audit_score == 1.0 and rep.audits_unknown == 20
    assert suspended(rep, P)  # 0.95**20 = 0.36 < 0.6
    rep = _run_from(rep, [S] * 20)  # answering again lifts the suspension
    assert not suspended(rep, P)
    assert not suspended(None, P)


def test_vetting_after_n_successes() -> None:
    assert not _run([S] * (P.vetting_audits - 1)).vetted
    rep = _run([F, *[S] * P.vetting_audits])
    assert rep.vetted and rep.vetted_at == float(P.vetting_audits)


NODE = NodeRecord("n", b"k" * 32, "http://x", "eu", "op", 100, 0, "v", 0.0, last_seen=100.0)
FRESH = Reputation.new("n", P)


@pytest.mark.parametrize(
    ("node", "rep", "now", "expected"),
    [
        (NODE, None, 100.0, True),  # online, never audited
        (NODE, FRESH, 119.0, True),
        (NODE, FRESH, 121.0, False),  # offline after 20 s
        (None, None, 100.0, False),  # unknown node
        (NODE, replace(FRESH, disqualified_at=1.0), 100.0, False),
        (NODE, replace(FRESH, exit_requested_at=1.0), 100.0, True),  # draining: still there
        (NODE, replace(FRESH, exit_requested_at=1.0, exit_finished_at=2.0), 100.0, False),
    ],
)
def test_healthy(
    node: NodeRecord | None, rep: Reputation | None, now: float, expected: bool
) -> None:
    assert healthy(node, rep, now, offline_after=20.0) is expected


def test_needs_move_only_while_exiting() -> None:
    assert not needs_move(None)
    assert needs_move(replace(FRESH, exit_requested_at=1.0))
    assert not needs_move(replace(FRESH, exit_requested_at=1.0, exit_finished_at=2.0))


def test_a_reachable_node_with_nothing_to_audit_leaves_suspension() -> None:
    """Emptied by repair while down, a suspended node can never answer an audit: being
    reachable lifts the unknown score alone, vouching for nothing about data."""
    rep = _run([S] * 3 + [U] * 30)
    assert suspended(rep, P)
    steps = 0
    while suspended(rep, P):
        rep = apply_reachable(rep, P)
        steps += 1
    assert 0 < steps < 30
    assert (rep.audits_success, rep.audits_failed, rep.vetted_at) == (3, 0, None)
    assert rep.audit_score == _run([S] * 3 + [U] * 30).audit_score
