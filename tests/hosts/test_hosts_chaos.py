"""Chaos on the highly available hosts network (issue 14), with real processes.

While the client host streams uploads (new keys, overwrites, multipart uploads of 2-3
parts) and checked reads, one part of the network dies: a coordinator (SIGKILL, in
the middle of a multipart upload), the database's primary (its machine: keeper and
postgres at once), a gateway (SIGKILL), a region's host (its cable cut). Each case
then checks that every acknowledged upload reads back byte-exact and that `skymesh
durability` comes back clean, and leaves the network whole for the next: the cases
share one network and run in this order.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.hosts.chaos import Stream, log_count, not_clean, streaming, wait_for
from tests.hosts.cluster import Cluster

pytestmark = [pytest.mark.hosts, pytest.mark.slow]

# How long the region case keeps a region's host off the bridge: a minute, as issue 14
# asks, ten times the nodes' offline_after (6 s) and past the coordinators'
# pending-upload TTL (20 s, cluster.FAST), so uploads go on without the region for
# most of the cut; shorter while working on it (docs/testing.md).
CUT_SECONDS = float(os.environ.get("SKYMESH_HOSTS_CUT_SECONDS", "60"))
# A dead coordinator's leases expire lease_ttl (10 s) after its last renewal and are
# taken at the survivor's next round: within 4/3 lease_ttl (docs/operations.md §5i).
TAKEOVER_BOUND_S = 15.0
# The database: 2-3 s detection, 8 s demote timeout, promotion, reconnects.
DATABASE_BOUND_S = 60.0


def _kinds(kinds: list[str]) -> dict[str, int]:
    return {k: kinds.count(k) for k in sorted(set(kinds))}


def _clean(c: Cluster, timeout: float = 90) -> float:
    return wait_for("durability not clean", lambda: not_clean(c), timeout=timeout, poll=2)


def _leases(c: Cluster, host: str, url: str) -> dict[str, object]:
    return dict(json.loads(c.probe(host, "leases", url)))


def test_coordinator_killed_mid_multipart(cluster: Cluster) -> None:
    """SIGKILL the coordinator that runs the loops while a multipart upload is under way:
    requests go on through the other (the gateway retries what is safe to repeat, and
    answers 503 otherwise); the loops' leases move to it within 15 s."""
    (victim, _), (survivor, survivor_host) = cluster.layout.coordinators
    url = cluster.roles[survivor].url
    before = _leases(cluster, survivor_host, url)["leases"]
    assert isinstance(before, list)
    theirs = [lease["name"] for lease in before if lease["held"] and not lease["held_here"]]
    assert theirs, f"{victim} holds no lease to hand over: {before}"
    with streaming(cluster, "coordinator-kill") as stream:
        time.sleep(3)
        mid_multipart = stream.wait_multipart_in_flight()
        killed_at = cluster.kill(victim)
        out = cluster.probe(survivor_host, "wait-leases", url, "30", timeout=45)
        takeover = json.loads(out)["at"] - killed_at
        time.sleep(3)  # uploads on the survivor alone
        cluster.restart(victim)
        time.sleep(3)  # and on both again
        counts = stream.stop()
    verified = stream.verify()
    failed = stream.failed_since(killed_at)
    acked = stream.acked_since(killed_at)
    repaired = _clean(cluster)
    print(
        f"\ncoordinator {victim} SIGKILLed{' mid-multipart' if mid_multipart else ''}: leases"
        f" {', '.join(theirs)} on {survivor} after {takeover:.1f} s; {len(acked)} uploads"
        f" acknowledged since, {len(failed)} failed ({_kinds([u.kind for u in failed])}); stream"
        f" {counts}; durability clean {repaired:.1f} s after"
    )
    assert takeover < TAKEOVER_BOUND_S
    assert acked, "no upload acknowledged after the kill"
    assert all(u.kind == "5xx" for u in failed), "a failure an S3 client would not retry"
    assert not verified["read_errors"], verified["read_errors"]


def test_database_primary_machine_killed(cluster: Cluster) -> None:
    """SIGKILL the PostgreSQL primary's machine (keeper, postmaster and backends at once):
    the standby is promoted, the coordinators reconnect by themselves, uploads work
    again, and nothing acknowledged is lost (commits waited for the standby)."""
    db = cluster.database
    old = db.primary()
    assert old is not None
    with streaming(cluster, "database-kill") as stream:
        time.sleep(3)
        killed_at = time.time()
        old.kill("machine")
        new = db.wait_promotion(old, timeout=DATABASE_BOUND_S)
        promoted = time.time() - killed_at
        wait_for(
            "no upload sent after the kill acknowledged",
            lambda: stream.first_ack_sent_after(killed_at) is None,
            timeout=DATABASE_BOUND_S,
            poll=0.5,
        )
        again = stream.first_ack_sent_after(killed_at)
        assert again is not None
        time.sleep(3)
        counts = stream.stop()
    # the machine comes back: its keeper rejoins it as the new primary's standby, which
    # takes a while (pg_rewind, catching up); the checks, all reads, run meanwhile
    restarted = time.monotonic()
    old.start()
    stream.verify()
    failed = stream.failed_since(killed_at)
    last_failure = stream.last_failure_since(killed_at)
    reads = stream.read_errors()
    repaired = _clean(cluster)
    db.wait_in_sync(timeout=120)
    in_sync = time.monotonic() - restarted
    print(
        f"\ndatabase primary {old.name} ({cluster.database_host(old)}) machine killed:"
        f" {new.name} promoted after {promoted:.1f} s, uploads acknowledged again"
        f" {again - killed_at:.1f} s after the kill, the last failed"
        f" {(last_failure or killed_at) - killed_at:.1f} s after it; {len(failed)} uploads"
        f" failed ({_kinds([u.kind for u in failed])}), {len(reads)} reads"
        f" ({_kinds([e['kind'] for e in reads])}); stream {counts}; {old.name} back in sync"
        f" {in_sync:.1f} s after its restart; durability clean {repaired:.1f} s after"
    )
    assert again - killed_at < DATABASE_BOUND_S
    # without a primary nothing is read or written: S3 answers 5xx, which SDKs retry
    assert all(u.kind == "5xx" for u in failed), "a failure an S3 client would not retry"
    # ... or, for a read whose answer had begun, a body cut short ("connection"): the
    # gateway asks for an object's segments in batches as it streams, and a batch asked
    # for while there is no primary fails after the status line is sent
    assert all(e["kind"] in ("5xx", "connection") for e in reads), reads


def test_gateway_killed(cluster: Cluster) -> None:
    """SIGKILL a gateway: the client moves to the other (as a load balancer would) and
    every request goes on there."""
    victim = cluster.layout.gateways[0][0]
    with streaming(cluster, "gateway-kill") as stream:
        time.sleep(3)
        killed_at = cluster.kill(victim)
        wait_for(
            "uploads after the gateway's death",
            lambda: "too few" if len(stream.acked_since(killed_at)) < 5 else "",
            timeout=60,
            poll=0.5,
        )
        counts = stream.stop()
    cluster.restart(victim)
    stream.verify()  # every acknowledged upload reads back byte-exact
    failed = stream.failed_since(killed_at)
    repaired = _clean(cluster)
    print(
        f"\ngateway {victim} SIGKILLed: {len(stream.acked_since(killed_at))} uploads"
        f" acknowledged since, {len(failed)} failed; stream {counts}; durability clean"
        f" {repaired:.1f} s after"
    )
    assert counts["switches"] >= 1
    assert not failed, failed
    # A read whose body was streaming from the killed gateway is cut short: no server
    # can finish a body for a process that is gone (the AWS CLI reads it again; boto3
    # raises IncompleteRead). The stream makes one request at a time, so at most one,
    # at the kill; every other read went to the other gateway and must succeed.
    reads = stream.read_errors()
    cut = [e for e in reads if e["kind"] == "connection" and abs(e["t"] - killed_at) < 5]
    assert len(cut) <= 1 and len(reads) == len(cut), reads


# Uploads acknowledged before the region case cuts the link and after it is back (a
# few seconds' worth at the stream's pace; half of them have pieces, on 8 of 12 nodes).
BEFORE_CUT = 15
AFTER_CUT = 5


def _acked_after(stream: Stream, t: float, count: int) -> None:
    """Until ``count`` uploads that ended after ``t`` are acknowledged."""
    wait_for(
        f"{count} uploads acknowledged",
        lambda: (n := len(stream.acked_since(t))) < count and f"{n} so far",
        timeout=60,
        poll=0.25,
    )


def _online(c: Cluster, names: list[str]) -> dict[str, bool]:
    ids = {}
    for node in c.nodes():
        host = node["address"].removeprefix("http://")
        ids[host] = bool(node["online"])
    return {n: ids[c.roles[n].url.removeprefix("http://")] for n in names}


def test_region_host_cut_off_under_load(cluster: Cluster) -> None:
    """A region's host is unplugged from the bridge (link down, packets dropped without a
    reset) for ``CUT_SECONDS`` while the client host uploads and reads; then plugged back.

    Every acknowledged upload reads back byte-exact, reads never fail (k of a segment's
    pieces are always outside the region), and `skymesh durability` comes back clean.
    """
    region = cluster.layout.regions[0]
    names = cluster.node_names(region)
    with streaming(cluster, "region-cut") as stream:
        _acked_after(stream, 0.0, BEFORE_CUT)  # objects on every region before the cut
        cut, cut_at = time.monotonic(), time.time()
        cluster.net.link_down(region)
        offline = wait_for(
            "cut-off nodes still online",
            lambda: [n for n, on in _online(cluster, names).items() if on],
            30,
        )
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut)))
        before = not_clean(cluster)  # shown only: repair may have caught up by now
        cluster.net.link_up(region)
        back, back_at = time.monotonic(), time.time()
        cluster.wait_online(timeout=60)
        rejoined = time.monotonic() - back
        _acked_after(stream, time.time(), AFTER_CUT)  # uploads again on every region
        counts = stream.stop()
    verified = stream.verify()
    during = [u for u in stream.acked_since(cut_at) if u.ended is not None and u.ended < back_at]
    gateways = [name for name, _ in cluster.layout.gateways]
    retried = log_count(cluster, gateways, "retrying without")
    repaired = _clean(cluster)
    print(
        f"\n{region} cut off for {CUT_SECONDS:.0f} s: offline after {offline:.1f} s, back online"
        f" {rejoined:.1f} s after the link; stream {counts}; durability clean"
        f" {repaired:.1f} s later; {len(during)} uploads acknowledged during the cut; segment"
        f" uploads the gateways retried without a node: {retried}; durability at the end of"
        f" the cut: {before or 'clean'}"
    )
    assert len(during) >= 5, "too few uploads while the region was cut off to prove anything"
    assert not verified["read_errors"], verified["read_errors"]
