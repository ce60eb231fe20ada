"""Audits: honest nodes pass, lying or rotting nodes fail and get disqualified."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from skymesh.coordinator.durability.health import healthy
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import AuditOutcome
from skymesh.node.piecefile import data_size_at
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows


def _record(planet: PlanetThread, index: int) -> NodeRecord:
    node_id = planet.planet.nodes[index].node_id
    return planet.run(coordinator(planet).overlay.registry.lookup([node_id]))[node_id]


def _audit(planet: PlanetThread, index: int) -> AuditOutcome:
    result = planet.run(coordinator(planet).durability.auditor.audit_node(_record(planet, index)))
    assert result is not None, "the node holds no piece to audit"
    return result.outcome


def _corrupt_on_disk(planet: PlanetThread, index: int) -> int:
    store = planet.planet.nodes[index].store
    count = 0
    for pid in store.iter_piece_ids():
        path: Path = store.path(pid)
        data = bytearray(path.read_bytes())
        for i in range(0, data_size_at(path), 4093):  # the piece's bytes, not its record
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        count += 1
    return count


def _fill(planet: PlanetThread, s3: S3Client) -> bytes:
    """Store objects until every node holds at least two pieces (one to audit, another
    for the store that answers with the wrong one); drive audits by hand from now on."""
    pause_durability_loops(planet)
    s3.create_bucket(Bucket="audited")
    data = random_bytes(1_500_000, seed=11)
    s3.put_object(Bucket="audited", Key="obj", Body=data)
    # Segments use 10 of the 12 nodes: more objects until every node holds enough.
    for i in range(20):
        held = Counter(r.node_id for r in piece_rows(planet))
        if all(held[n.node_id] >= 2 for n in planet.planet.nodes):
            break
        s3.put_object(Bucket="audited", Key=f"other{i}", Body=random_bytes(70_000, seed=13 + i))
    return data


@pytest.fixture(scope="module")
def stored(planet: PlanetThread, s3: S3Client) -> bytes:
    return _fill(planet, s3)


def test_honest_nodes_pass_audits(planet: PlanetThread, stored: bytes) -> None:
    c = coordinator(planet)
    results = planet.run(c.durability.auditor.step())
    assert results and all(r.outcome is AuditOutcome.SUCCESS for r in results)
    for i in range(len(planet.planet.nodes)):
        assert _audit(planet, i) is AuditOutcome.SUCCESS
    rep = c.overlay.reputation.cached(planet.planet.nodes[3].node_id)
    assert rep is not None and rep.audit_score == 1.0 and not rep.disqualified


def test_lying_store_is_caught(planet: PlanetThread, stored: bytes) -> None:
    p = planet.planet
    node = p.nodes[1]
    for fault in ("corrupt", "swap", "missing"):
        faulty = p.fault(node, fault)
        try:
            assert _audit(planet, 1) is AuditOutcome.FAILURE, fault
        finally:
            planet.run(p.heal(node))
        assert faulty.reads or fault == "missing"
    assert _audit(planet, 1) is AuditOutcome.SUCCESS
    rep = coordinator(planet).overlay.reputation.cached(node.node_id)
    assert rep is not None and rep.audits_failed == 3 and not rep.disqualified


def test_offline_node_scores_unknown_not_failure(planet: PlanetThread, stored: bytes) -> None:
    c = coordinator(planet)
    p = planet.planet
    record = _record(planet, 2)
    planet.run(p.stop_node(p.nodes[2]))
    try:
        before = c.overlay.reputation.cached(record.node_id)
        result = planet.run(c.durability.auditor.audit_node(record))
        assert result is not None and result.outcome is AuditOutcome.UNKNOWN
        assert (
            record.node_id not in c.durability.auditor.contained
        )  # down, not stalling: no containment
        after = c.overlay.reputation.cached(record.node_id)
        assert after is not None and after.audits_unknown == 1
        assert after.audit_score == (before.audit_score if before else 1.0)
        assert after.unknown_score < 1.0
    finally:
        planet.run(p.start_node(p.nodes[2]))


def test_rotting_node_is_disqualified(own_planet: PlanetThread) -> None:
    planet, s3 = own_planet, own_planet.boto3()
    _fill(planet, s3)
    c = coordinator(planet)
    node_id = planet.planet.nodes[0].node_id
    assert _corrupt_on_disk(planet, 0) >= 1
    scores = []
    for _ in range(100):
        assert _audit(planet, 0) is AuditOutcome.FAILURE
        rep = c.overlay.reputation.cached(node_id)
        assert rep is not None
        scores.append(rep.audit_score)
        if rep.disqualified:
            break
    assert rep is not None and rep.disqualified, scores[-1]
    assert scores == sorted(scores, reverse=True)
    assert rep.audit_score < c.config.audit_dq_threshold
    # lambda 0.999 from a fresh start: 41 failures bring it under 0.96; a background
    # audit that passed before the loops were paused adds one or two more
    assert 41 <= len(scores) <= 43, len(scores)
    status = {n.node_id: n for n in planet.run(c.overlay.registry.node_list()).nodes}[node_id]
    assert status.disqualified and status.audits >= 41 and status.audit_score < 0.96
    # its pieces no longer count, and it gets no new ones
    record = _record(planet, 0)
    assert not healthy(record, rep, c.clock(), offline_after=c.config.offline_after)
    assert planet.run(c.durability.auditor.step()) is not None
    s3.put_object(Bucket="audited", Key="after", Body=random_bytes(400_000, seed=12))
    info = s3.head_object(Bucket="audited", Key="after")
    assert info["ContentLength"] == 400_000
    rows = piece_rows(planet)
    latest = max(r.stream_id for r in rows)
    assert node_id not in {r.node_id for r in rows if r.stream_id == latest}


def test_audit_route_refuses_bad_requests(planet: PlanetThread, stored: bytes) -> None:
    import aiohttp

    from skymesh.wire.node import PieceAction
    from skymesh.wire.signing import ORDER_HEADER, encode_header

    c = coordinator(planet)
    node = planet.planet.nodes[5]
    piece_id = next(iter(node.store.iter_piece_ids()))

    async def ask(chunk: str, action: PieceAction = PieceAction.AUDIT) -> tuple[int, str]:
        order = c.orders.order(node.node_id, piece_id, action, 65536)
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{node.address}/v1/pieces/{piece_id}/audit",
                params={"chunk": chunk} if chunk else {},
                headers={ORDER_HEADER: encode_header(order)},
            ) as resp,
        ):
            return resp.status, await resp.text()

    assert planet.run(ask(""))[0] == 400
    assert planet.run(ask("-1"))[0] == 400
    status, body = planet.run(ask("99999"))
    assert status == 400 and "out of range" in body
    status, body = planet.run(ask("0", PieceAction.GET))
    assert status == 403 and "order allows get, not audit" in body
    assert planet.run(ask("0"))[0] == 200


def _stalled(planet: PlanetThread, index: int) -> tuple[AuditOutcome, str, int]:
    """Audit node ``index`` with a deadline no answer can meet: (outcome, piece id, chunk)."""
    auditor = coordinator(planet).durability.auditor
    patient, auditor.timeout = auditor.timeout, 1e-6
    try:
        result = planet.run(auditor.audit_node(_record(planet, index)))
    finally:
        auditor.timeout = patient
    assert result is not None
    return result.outcome, result.piece_id, result.chunk


def test_a_stalling_node_is_contained_then_failed(planet: PlanetThread, stored: bytes) -> None:
    c = coordinator(planet)
    node_id = planet.planet.nodes[7].node_id
    failed_before = getattr(c.overlay.reputation.cached(node_id), "audits_failed", 0)
    outcome, piece, chunk = _stalled(planet, 7)
    assert outcome is AuditOutcome.UNKNOWN and node_id in c.durability.auditor.contained
    # The same chunk every time, until the re-asks run out: then one failed audit.
    for reask in range(1, c.config.audit_contained_retries + 1):
        outcome, again, again_chunk = _stalled(planet, 7)
        assert (again, again_chunk) == (piece, chunk)
        last = reask == c.config.audit_contained_retries
        assert outcome is (AuditOutcome.FAILURE if last else AuditOutcome.UNKNOWN)
    assert node_id not in c.durability.auditor.contained
    rep = c.overlay.reputation.cached(node_id)
    assert rep is not None and rep.audits_failed == failed_before + 1


def test_a_correct_answer_releases_a_contained_node(planet: PlanetThread, stored: bytes) -> None:
    c = coordinator(planet)
    node_id = planet.planet.nodes[8].node_id
    outcome, piece, chunk = _stalled(planet, 8)
    assert outcome is AuditOutcome.UNKNOWN and node_id in c.durability.auditor.contained
    # A round audits every contained node, whatever the sample draws.
    results = {r.node_id: r for r in planet.run(c.durability.auditor.step())}
    assert (results[node_id].piece_id, results[node_id].chunk) == (piece, chunk)
    assert results[node_id].outcome is AuditOutcome.SUCCESS
    assert node_id not in c.durability.auditor.contained
    rep = c.overlay.reputation.cached(node_id)
    assert rep is not None and rep.audits_failed == 0 and not rep.disqualified


def test_a_suspended_node_with_no_pieces_is_let_back(own_planet: PlanetThread) -> None:
    """Suspension must not be a trap: a node emptied by repair while it was down has
    nothing to be audited on, so while it stays reachable its suspension lifts."""
    planet = own_planet
    pause_durability_loops(planet)
    c = coordinator(planet)
    p = planet.planet
    node = planet.run(p.add_node(p.config.regions[0]))  # a new node: holds no piece
    planet.run(p.wait_online(len(p.nodes)))
    for _ in range(30):  # as if its audits had gone unanswered while it was down
        planet.run(c.overlay.reputation.record(node.node_id, AuditOutcome.UNKNOWN))
    record = planet.run(c.overlay.registry.lookup([node.node_id]))[node.node_id]
    assert node.node_id in planet.run(c.overlay.registry.placement_filters())[0]  # barred
    rounds = 0
    while node.node_id in planet.run(c.overlay.registry.placement_filters())[0]:
        assert planet.run(c.durability.auditor.audit_node(record)) is None  # nothing to audit
        rounds += 1
        assert rounds < 50, "the suspension never lifted"
    rep = c.overlay.reputation.cached(node.node_id)
    assert rep is not None and rep.audits_success == 0 and rep.vetted_at is None
