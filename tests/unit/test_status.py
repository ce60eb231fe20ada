"""`skymesh status` as pure parts: node grouping, what needs attention, the drawing,
the warnings ring and the durability tally's age."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

from rich.console import Console

from skymesh.coordinator.durability.report import Tally
from skymesh.coordinator.events import RecentEvents
from skymesh.coordinator.status import group_nodes
from skymesh.status_console import Probe, home_gateways, screen, show_status
from skymesh.wire.durability import DurabilityReport, SchemeHealth
from skymesh.wire.inference import ComputeAdvert, ComputeNode, ModelOffer
from skymesh.wire.keys import CoordinatorKeyInfo
from skymesh.wire.leases import LeaseInfo, LeaseList
from skymesh.wire.metainfo import Scheme
from skymesh.wire.registry import NodeStatus
from skymesh.wire.status import NetworkStatus, RecentEvent, RepairQueue

NOW = 1_800_000_000.0
GIB = 1024**3


def _node(i: int, region: str, operator: str, **fields: object) -> NodeStatus:
    values: dict = dict(
        node_id=f"n{i}",
        address=f"http://127.0.0.1:{7800 + i}",
        region=region,
        operator=operator,
        capacity_bytes=10 * GIB,
        used_bytes=GIB,
        online=True,
        last_seen=NOW,
        joined_at=NOW - 100,
        vetted=True,
        version="0.9.0",
    )
    values.update(fields)
    return NodeStatus(**values)


def test_group_nodes_counts_each_node_in_one_state() -> None:
    groups = group_nodes(
        [
            _node(1, "eu", "acme"),
            _node(2, "eu", "acme", online=False),
            _node(3, "eu", "acme", suspended=True),
            _node(4, "eu", "acme", exit="draining", version="0.8.0"),
            _node(5, "us", "zeta", disqualified=True),
            _node(6, "eu", "beta", vetted=False),
        ]
    )
    assert [(g.region, g.operator) for g in groups] == [
        ("eu", "acme"),
        ("eu", "beta"),
        ("us", "zeta"),
    ]
    acme = groups[0]
    assert acme.states == {"online": 1, "suspended": 1, "offline": 1, "exiting": 1}
    # capacity of the nodes that answer and hold pieces: online and suspended
    assert (acme.capacity_bytes, acme.used_bytes) == (20 * GIB, 2 * GIB)
    assert acme.versions == {"0.8.0": 1, "0.9.0": 3}
    assert groups[1].states == {"unvetted": 1} and groups[2].states == {"disqualified": 1}


def _status(**fields: object) -> NetworkStatus:
    scheme = Scheme(k=2, repair=3, optimal=4, total=4)
    values: dict = dict(
        generated_at=NOW,
        coordinator_id="c" * 40,
        version="0.9.0",
        coordinators=[
            CoordinatorKeyInfo(
                coordinator_id="c" * 40, public_key=b"k", url="http://c1:7777", added_at=NOW
            ),
            CoordinatorKeyInfo(
                coordinator_id="d" * 40,
                public_key=b"k",
                url="http://c2:7777",
                added_at=NOW,
                retired_at=NOW,
            ),
        ],
        nodes=group_nodes([_node(1, "eu-west", "acme"), _node(2, "eu-west", "acme", online=False)]),
        durability=DurabilityReport(
            generated_at=NOW - 30,
            nodes=2,
            healthy_nodes=1,
            segments=12,
            inline_segments=3,
            schemes=[
                SchemeHealth(
                    scheme=scheme,
                    segments=12,
                    histogram={4: 10, 3: 2},
                    at_or_below_repair=2,
                    lost=0,
                )
            ],
            at_risk=[],
            lost=[],
            at_risk_total=2,
        ),
        repair_queue=RepairQueue(queued=2, below_minimum=0, histogram={3: 2}),
        leases=LeaseList(
            coordinator="c" * 40 + "/abcd",
            generated_at=NOW,
            leases=[
                LeaseInfo(
                    name="audit",
                    holder="c" * 40 + "/abcd",
                    acquired_at=NOW - 60,
                    expires_at=NOW + 30,
                    held=True,
                    held_here=True,
                    runs=7,
                    last_run_at=NOW - 5,
                ),
                LeaseInfo(
                    name="gc",
                    holder="c" * 40 + "/abcd",
                    acquired_at=NOW - 60,
                    expires_at=NOW + 30,
                    held=True,
                    held_here=True,
                    runs=3,
                    last_run_at=NOW - 50,
                    failures=2,
                    last_error="OSError: [Errno 28] No space",
                    last_error_at=NOW - 2,
                ),
            ],
        ),
        compute=[
            ComputeNode(
                node_id="n1",
                address="http://127.0.0.1:7801",
                region="eu-west",
                operator="acme",
                advert=ComputeAdvert(
                    models=[ModelOffer(name="tiny-chat", kind="chat", context_length=2048)],
                    cores=4,
                    memory_bytes=GIB,
                    queue_depth=1,
                    concurrency=2,
                    queue_limit=8,
                    tokens_per_second=41.5,
                ),
            )
        ],
        events=[RecentEvent(at=NOW - 1, level="ERROR", logger="skymesh.x", message="db [gone]")],
    )
    values.update(fields)
    return NetworkStatus(**values)


def _draw(s: object) -> str:
    out = io.StringIO()
    show_status(s, Console(file=out, width=160, color_system=None))  # type: ignore[arg-type]
    return out.getvalue()


def test_the_screen_shows_each_part_and_what_is_red() -> None:
    probes = [
        Probe(role="coordinator", url="http://c1:7777", up=True, version="0.9.0", id="c" * 40),
        Probe(role="gateway", url="https://gw:9000", up=False, error="connection refused"),
    ]
    s = screen(_status(), probes)
    assert s.problems == [
        "gateway https://gw:9000 is down (connection refused)",
        "loop gc is failing: OSError: [Errno 28] No space",
    ]
    assert "1 nodes offline" in s.warnings and "2 segments queued for repair" in s.warnings
    text = _draw(s)
    for shown in (
        "✗ gateway https://gw:9000 is down",
        "retired",
        "DOWN",
        "2 registered",
        "0.9.0 ×2",
        "eu-west",
        "acme",
        "9.0 GiB",  # free: the online node's 10 GiB less 1 GiB used (the offline one's not)
        "12 in pieces, 3 inline (tally 30 s old); repair queue 2 (by healthy pieces: 3: 2); none lost",
        "scheme 2/3/4/4: 12",
        "failing: OSError: [Errno 28] No space",
        "tiny-chat",
        "41.5",
        "ERROR skymesh.x: db [gone]",
    ):
        assert shown in text, (shown, text)


def test_a_healthy_network_exits_zero_and_says_so() -> None:
    healthy = _status(
        nodes=group_nodes([_node(1, "eu-west", "acme")]),
        repair_queue=RepairQueue(queued=0, below_minimum=0, histogram={}),
        leases=LeaseList(coordinator="c", generated_at=NOW, leases=[]),
        compute=[],
        events=[],
    )
    s = screen(healthy, [Probe(role="gateway", url="http://gw", up=True)])
    assert s.problems == [] and s.warnings == []
    text = _draw(s)
    assert "✓ healthy" in text and "no compute node" in text and "no recent warnings" in text
    lost = screen(
        _status(repair_queue=RepairQueue(queued=1, below_minimum=1, histogram={1: 1})), []
    )
    assert "1 segments below k healthy pieces: unreadable until nodes return" in lost.problems
    assert any("no gateway known" in w for w in lost.warnings)
    untallied = screen(_status(durability=None), [])
    assert "the coordinator's first durability tally is still being made" in untallied.warnings
    assert "first tally being made, ask again shortly; repair queue 2" in _draw(untallied)


async def test_recent_events_keep_the_newest_warnings() -> None:
    ring = RecentEvents(size=3, logger="skymesh.test_ring")
    log = logging.getLogger("skymesh.test_ring.part")
    log.setLevel(logging.INFO)
    await ring.attach()
    try:
        log.info("not kept")
        for i in range(5):
            log.warning("warning %d\nsecond line", i)
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    finally:
        await ring.detach()
    log.warning("after detach")
    kept = ring.events()
    assert [e.message for e in kept] == ["warning 3", "warning 4", "failed (ValueError: bad)"]
    assert [e.level for e in kept] == ["WARNING", "WARNING", "ERROR"]


async def test_tally_answers_at_once_and_scans_again_in_the_background() -> None:
    clock = [NOW]
    made: list[float] = []
    go = asyncio.Event()

    async def make() -> DurabilityReport:
        await go.wait()
        made.append(clock[0])
        return DurabilityReport(
            generated_at=clock[0],
            nodes=0,
            healthy_nodes=0,
            segments=len(made),
            inline_segments=0,
            schemes=[],
            at_risk=[],
            lost=[],
        )

    tally = Tally(make, lambda: clock[0], max_age=60, wait=0.01)
    assert await tally.latest() is None  # the first scan outlasts ``wait``
    go.set()
    assert (await tally.latest()).segments == 1  # type: ignore[union-attr]  # waits for it
    clock[0] += 59
    assert (await tally.latest()).segments == 1  # type: ignore[union-attr]  # young enough
    clock[0] += 2
    assert (await tally.latest()).segments == 1  # type: ignore[union-attr]  # stale, at once
    await asyncio.sleep(0.01)  # the background scan ends
    assert (await tally.latest()).segments == 2  # type: ignore[union-attr]
    assert (await tally.fresh()).segments == 3 and tally.last is not None
    assert tally.last.segments == 3
    await tally.close()


async def test_tally_close_cancels_a_scan_in_progress() -> None:
    async def never() -> DurabilityReport:
        await asyncio.Event().wait()
        raise AssertionError

    tally = Tally(never, lambda: NOW, wait=0.0)
    assert await tally.latest() is None
    await tally.close()
    assert tally.last is None


def test_home_gateways_are_read_from_the_up_home(tmp_path: Path) -> None:
    from skymesh.config import GatewayConfig, config_to_toml

    for folder, cfg in (
        ("gateway", GatewayConfig(port=9000)),
        ("gateway-2", GatewayConfig(host="0.0.0.0", port=9001)),
        ("gateways/us-east", GatewayConfig(port=9100, tls_cert="c.pem", tls_key="k.pem")),
    ):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.toml").write_text(config_to_toml(cfg))
    urls, tls = home_gateways(tmp_path)
    assert urls == ["http://127.0.0.1:9000", "http://127.0.0.1:9001", "https://127.0.0.1:9100"]
    assert tls is None  # no local CA in this home
    assert home_gateways(tmp_path / "nowhere") == ([], None)
