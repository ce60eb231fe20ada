"""Two coordinators over one database, racing: whatever must happen once happens once.

Each test starts two real coordinators (``a`` and ``b``, each its own identity) on one
database, on each engine, and sends the competing calls through both at once. On
SQLite writers take turns, so a race there only checks the outcome; on PostgreSQL
the writes really overlap, and :func:`overlapping` forces the interleaving that
matters: each coordinator's transaction reads what it decides on, then waits at a
barrier until the other has read too, then writes. Without the protection under
test (SERIALIZABLE writes run again on a conflict, a compare-and-set, a unique key)
both would pass their checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from skymesh.coordinator import CoordinatorService
from skymesh.coordinator.db.engine import Database, Txn
from skymesh.coordinator.db.schema import (
    compute_reputation,
    garbage_pieces,
    inference_usage,
    objects,
    pending_streams,
    pieces,
    spot_checks,
)
from skymesh.coordinator.durability.repair import worker as repair
from skymesh.coordinator.inference import keys as inference_keys
from skymesh.errors import Conflict, Forbidden, NotFound, PreconditionFailed, SkymeshError
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.base import Empty
from skymesh.wire.inference import (
    CheckInferenceKeyRequest,
    CreateInferenceKeyRequest,
    InferenceOrder,
    SpotCheckReport,
)
from skymesh.wire.metainfo import (
    AbortObjectRequest,
    BeginSegmentRequest,
    CommitObjectRequest,
    CommitSegmentRequest,
    ObjectInfo,
    PutInlineRequest,
    SegmentPosition,
)
from skymesh.wire.metering import UsageReport, UsageReports
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import sign
from tests.unit.test_coordinator_multipart import begin_upload, complete, upload_part
from tests.unit.test_coordinator_support import (
    ADMIN_TOKEN,
    FakeNode,
    Harness,
    coordinator_config,
    garbage,
    merkle_of,
    running,
)

REGIONS = ("eu", "us", "ap")
ROUNDS = 4  # races run per test where a round is cheap: each one forced, so none is luck


@contextlib.asynccontextmanager
async def duo(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Harness, Harness]]:
    """Coordinators ``a`` and ``b`` on one database, with one project and one clock;
    each harness calls its own coordinator."""
    async with running(tmp_path / "a", database_url=database_url) as a:
        service = await CoordinatorService.open(
            coordinator_config(tmp_path / "b", database_url=database_url), clock=a.clock
        )
        await service.start()
        try:
            b = Harness(
                service,
                a.session,
                a.clock,
                RpcClient(service.url, a.session, {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
                a.project,
                RpcClient(service.url, a.session, {"Authorization": f"Bearer {a.project.api_key}"}),
                a.nodes,  # one network: nodes and operators joined through either
                a.operators,
            )
            assert a.service.identity.id != b.service.identity.id
            yield a, b
        finally:
            await service.stop()


# ---------------------------------------------------------------- forcing the interleaving


def writes(statement: Any) -> bool:
    """An INSERT, UPDATE or DELETE."""
    if isinstance(statement, sa.TextClause):
        return statement.text.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    return isinstance(statement, sa.sql.dml.UpdateBase)


def locks(statement: Any) -> bool:
    """A SELECT ... FOR UPDATE."""
    return getattr(statement, "_for_update_arg", None) is not None


def writes_or_locks(statement: Any) -> bool:
    """A write, or a SELECT ... FOR UPDATE (which waits on the other's row lock: the
    barrier must come before it, or each would wait on the other)."""
    return writes(statement) or locks(statement)


class _Waiting:
    """A connection that, once, waits at ``barrier`` before the first statement that
    ``before`` picks (and at the end of the transaction if none came)."""

    def __init__(
        self, conn: sa.Connection, barrier: threading.Barrier, before: Callable[[Any], bool]
    ) -> None:
        self.conn, self.barrier, self.before, self.waited = conn, barrier, before, False

    def wait(self) -> None:
        if not self.waited:
            self.waited = True
            self.barrier.wait()

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self.before(statement):
            self.wait()
        return self.conn.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@contextlib.contextmanager
def overlapping(
    dbs: tuple[Database, Database], txn_name: str, before: Callable[[Any], bool] = writes
) -> Iterator[None]:
    """On PostgreSQL, the next write transaction named ``txn_name`` (a substring of its
    function's qualified name) on each database waits, on its first try, before its
    first statement that ``before`` picks until the other's has got there too: both read
    before either writes. Tries after a conflict run as they are. On SQLite nothing
    is forced (one writer at a time: the second would wait on the first's lock)."""
    if dbs[0].is_sqlite:
        yield
        return
    barrier = threading.Barrier(len(dbs), timeout=15)
    for db in dbs:
        armed = [True]

        async def write(txn: Txn[Any], db: Database = db, armed: list[bool] = armed) -> Any:
            if not (armed[0] and txn_name in txn.__qualname__):
                return await Database.write(db, txn)
            armed[0] = False
            tries = 0

            def first_waits(conn: sa.Connection) -> Any:
                nonlocal tries  # test instrumentation, outside the transaction's rule
                tries += 1
                if tries > 1:
                    return txn(conn)
                waiting = _Waiting(conn, barrier, before)
                try:
                    return txn(waiting)  # type: ignore[arg-type]
                finally:
                    waiting.wait()  # a transaction that wrote nothing releases the other

            return await Database.write(db, first_waits)

        db.write = write  # type: ignore[method-assign]
    try:
        yield
    finally:
        for db in dbs:
            del db.write


def dbs(a: Harness, b: Harness) -> tuple[Database, Database]:
    return a.service.db, b.service.db


async def both(*calls: Any) -> list[Any]:
    """Run the calls at once; each result, or the SkymeshError it raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


def split(results: list[Any], error: type[SkymeshError]) -> tuple[list[Any], list[Any]]:
    """(successes, failures), every failure an ``error``."""
    failed = [r for r in results if isinstance(r, BaseException)]
    for e in failed:
        assert isinstance(e, error), repr(e)
    return [r for r in results if not isinstance(r, BaseException)], failed


# ---------------------------------------------------------------- conditional writes


def put_inline(
    key: str, body: bytes, *, if_match: str = "", if_none_match: str = ""
) -> PutInlineRequest:
    return PutInlineRequest(
        bucket="races",
        key=key,
        size=0,
        etag=body.decode(),
        encrypted_key=b"k",
        encrypted_metadata=body,
        if_match=if_match,
        if_none_match=if_none_match,
    )


async def versions(h: Harness, key: str) -> list[tuple[str, str]]:
    """(stream id, etag) of every version of ``key``, newest first."""
    o = objects.c
    rows = await h.service.db.read(
        lambda conn: conn.execute(
            sa.select(o.stream_id, o.etag).where(o.key == key).order_by(o.seq)
        ).all()
    )
    return [(r.stream_id, r.etag) for r in rows]


async def test_if_none_match_creates_through_both_one_wins(
    tmp_path: Path, database_url: str
) -> None:
    async with duo(tmp_path, database_url) as (a, b):
        await a.create_bucket("races")
        for i in range(ROUNDS):
            key = f"new-{i}"
            with overlapping(dbs(a, b), "put_inline"):
                results = await both(
                    a.client.send(routes.PUT_INLINE, put_inline(key, b"from-a", if_none_match="*")),
                    b.client.send(routes.PUT_INLINE, put_inline(key, b"from-b", if_none_match="*")),
                )
            [won], [_lost] = split(results, PreconditionFailed)
            assert isinstance(won, ObjectInfo)
            assert await versions(a, key) == [(won.version_id, won.etag)]  # the winner's


async def test_if_match_overwrites_through_both_one_wins(tmp_path: Path, database_url: str) -> None:
    async with duo(tmp_path, database_url) as (a, b):
        await a.create_bucket("races")
        for i in range(ROUNDS):
            key = f"old-{i}"
            await a.client.send(routes.PUT_INLINE, put_inline(key, b"first"))
            # the latest version's row is locked by the first to write: wait before it
            with overlapping(dbs(a, b), "put_inline", before=writes_or_locks):
                results = await both(
                    a.client.send(routes.PUT_INLINE, put_inline(key, b"from-a", if_match="first")),
                    b.client.send(routes.PUT_INLINE, put_inline(key, b"from-b", if_match="first")),
                )
            [won], [_lost] = split(results, PreconditionFailed)
            assert [etag for _, etag in await versions(a, key)] == [won.etag]


async def test_completes_of_one_upload_through_both_make_one_version(
    tmp_path: Path, database_url: str
) -> None:
    """A complete sent again is answered as the first was (a retry whose answer was
    lost): racing, both succeed with the same version, and there is one object."""
    async with duo(tmp_path, database_url) as (a, b):
        await a.add_nodes(REGIONS, 2)
        await a.create_bucket("bkt")
        for i in range(2):
            upload = await begin_upload(a, key=f"mp-{i}")
            await upload_part(a, upload, 1, [300])
            await upload_part(a, upload, 2, [100])
            with overlapping(dbs(a, b), "complete_upload"):
                first, second = await both(
                    complete(a, upload, [(1, "etag-1"), (2, "etag-2")]),
                    complete(b, upload, [(1, "etag-1"), (2, "etag-2")]),
                )
            assert isinstance(first, ObjectInfo) and isinstance(second, ObjectInfo)
            assert first.version_id == second.version_id == upload.upload_id
            assert (first.size, second.size) == (400, 400)
            assert await versions(a, upload.key) == [(upload.upload_id, "md5s-3")]
            assert not await pending(a, upload.upload_id)


async def pending(h: Harness, stream_id: str) -> bool:
    p = pending_streams.c
    return bool(
        await h.service.db.read(
            lambda conn: conn.execute(
                sa.select(p.stream_id).where(p.stream_id == stream_id)
            ).one_or_none()
        )
    )


async def test_a_commit_racing_an_abort_of_one_stream_one_wins(
    tmp_path: Path, database_url: str
) -> None:
    """Either the commit wins (the object is there, the abort finds no upload) or the
    abort does (no object; every recorded piece queued as garbage; the commit finds no
    upload): never both, never a half."""
    async with duo(tmp_path, database_url) as (a, b):
        await a.add_nodes(REGIONS, 2)
        await a.create_bucket("photos")
        outcomes = set()
        for i in range(ROUNDS):
            key = f"doc-{i}"
            begun = await a.begin("photos", key, 1000)
            first = a.store(begun.placement, 1000)
            await a.client.send(
                routes.COMMIT_SEGMENT,
                CommitSegmentRequest(stream_id=begun.stream_id, segment=first),
            )
            placement = await a.client.send(
                routes.BEGIN_SEGMENT,
                BeginSegmentRequest(
                    stream_id=begun.stream_id, position=SegmentPosition(index=1), plain_size=500
                ),
            )
            last = a.store(placement, 500, SegmentPosition(index=1))
            commit = CommitObjectRequest(
                stream_id=begun.stream_id,
                bucket="photos",
                key=key,
                size=1500,
                etag="e",
                encrypted_metadata=b"m",
                segments=[last],
            )
            abort = AbortObjectRequest(bucket="photos", key=key, stream_id=begun.stream_id)
            # alternate which coordinator commits, so either may be the first to write
            committer, aborter = (a, b) if i % 2 else (b, a)
            with overlapping(dbs(a, b), "_object."):
                committed, aborted = await both(
                    committer.client.send(routes.COMMIT_OBJECT, commit),
                    aborter.client.send(routes.ABORT_OBJECT, abort),
                )
            found = await versions(a, key)
            first_pieces = {
                (p.node_id, derive_piece_id(first.root_piece_id, p.piece_num)) for p in first.pieces
            }
            if isinstance(committed, ObjectInfo):
                outcomes.add("commit")
                assert isinstance(aborted, NotFound) and aborted.code == "NoSuchUpload"
                assert found == [(begun.stream_id, "e")]
                assert not first_pieces & await garbage(a)
            else:
                outcomes.add("abort")
                assert isinstance(aborted, Empty), aborted
                assert isinstance(committed, NotFound) and committed.code == "NoSuchUpload"
                assert found == []
                assert first_pieces <= await garbage(a)
            assert not await pending(a, begun.stream_id)
        assert outcomes  # (which one wins is up to the database)


# ---------------------------------------------------------------- repair's compare-and-set


async def test_two_repairs_of_one_segment_one_swap_lands(tmp_path: Path, database_url: str) -> None:
    """Two repair workers, one per coordinator, rebuilt the same lost piece onto two
    new nodes and swap at once: exactly one swap lands, the loser's piece is queued
    as garbage, and the segment has each piece number once, none lost.

    The swap is driven directly (the workers' downloads and uploads need real nodes;
    ``tests/planet/test_repair.py`` drives whole repairs): both read the segment as it
    was before either swaps, as two workers that started together would.
    """
    async with duo(tmp_path, database_url) as (a, b):
        await a.add_nodes(REGIONS, 2)
        await a.create_bucket("photos")
        await a.upload("photos", "obj", [100_000])
        await a.add_nodes(["eu"], 2)  # the rebuilt piece's new homes
        seg_key = await a.service.db.read(
            lambda conn: tuple(
                conn.execute(
                    sa.select(pieces.c.stream_id, pieces.c.part, pieces.c.idx).distinct()
                ).one()
            )
        )
        seg_a = await a.service.db.read(lambda conn: repair._load_segment(conn, seg_key))
        seg_b = await b.service.db.read(lambda conn: repair._load_segment(conn, seg_key))
        assert seg_a is not None and seg_a == seg_b
        lost = seg_a.stored[0]
        spare = sorted(set(a.nodes) - {p.node_id for p in seg_a.stored})
        pid = derive_piece_id(seg_a.root_piece_id, lost.piece_num)
        rebuilt = {
            name: [(lost.piece_num, node_id, merkle_of(pid))]
            for name, node_id in (("a", spare[0]), ("b", spare[1]))
        }
        now = a.clock()

        # Each swap locks the segment's row first thing after dequeueing it, so the second
        # waits for the first to commit; waiting before that lock, both have taken
        # their snapshot (the dequeue, of no row here, locks nothing): the second reads
        # the pieces as they were, and only SERIALIZABLE's conflict and retry show it
        # the first's swap.
        with overlapping(dbs(a, b), "repair", before=locks):
            swapped = await both(
                a.service.db.write(
                    lambda conn: repair._swap(conn, seg_a, rebuilt["a"], [lost], now)
                ),
                b.service.db.write(
                    lambda conn: repair._swap(conn, seg_b, rebuilt["b"], [lost], now)
                ),
            )
        assert sorted(swapped) == [False, True], swapped
        winner, loser = ("a", "b") if swapped[0] else ("b", "a")
        rows = await a.service.db.read(
            lambda conn: conn.execute(
                sa.select(pieces.c.piece_num, pieces.c.node_id).where(
                    pieces.c.stream_id == seg_key[0]
                )
            ).all()
        )
        expected = {(p.piece_num, p.node_id) for p in seg_a.stored[1:]}
        expected.add((lost.piece_num, rebuilt[winner][0][1]))
        assert sorted(rows) == sorted(expected)  # each number once: the winner's rebuilt
        g = garbage_pieces.c
        queued = await a.service.db.read(
            lambda conn: conn.execute(sa.select(g.node_id, g.piece_id)).all()
        )
        # the lost piece once (by the winner), the loser's copy once; nothing live
        assert sorted(queued) == sorted([(lost.node_id, pid), (rebuilt[loser][0][1], pid)])


# ---------------------------------------------------------------- single-use orders


def inference_order(h: Harness, node: FakeNode, serial: str, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "serial": serial,
        "coordinator_id": h.service.identity.id,
        "node_id": node.id,
        "project_id": h.project.project_id,
        "model": "m",
        "max_tokens": 100,
        "expires_at": h.clock() + 60,
        "issued_at": h.clock(),
        "price_in": 1.0,
        "price_out": 2.0,
        "region": node.region,
        **fields,
    }
    return sign(h.service.identity, InferenceOrder(**values))


async def test_one_usage_report_through_both_counts_once(tmp_path: Path, database_url: str) -> None:
    async with duo(tmp_path, database_url) as (a, b):
        [node] = await a.add_nodes(["eu"], 1)
        for i in range(ROUNDS):
            # an order a signed, reported through both (a gateway that retried elsewhere)
            report = UsageReports(
                reports=[
                    UsageReport(
                        order=inference_order(a, node, f"{i:032x}"),
                        prompt_tokens=10,
                        completion_tokens=20,
                    )
                ]
            )
            with overlapping(dbs(a, b), "record_served"):
                results = await both(
                    a.client.send(routes.USAGE_REPORTS, report),
                    b.client.send(routes.USAGE_REPORTS, report),
                )
            recorded, _ = split(results, SkymeshError)
            assert sorted((r.recorded, r.duplicates) for r in recorded) == [(0, 1), (1, 0)]
        u = inference_usage.c
        total = await a.service.db.read(
            lambda conn: conn.execute(
                sa.select(sa.func.count(), sa.func.sum(u.prompt_tokens))
            ).one()
        )
        assert tuple(total) == (ROUNDS, 10 * ROUNDS)


async def test_one_spot_check_through_both_is_evidence_once(
    tmp_path: Path, database_url: str
) -> None:
    async with duo(tmp_path, database_url) as (a, b):
        first, second = await a.add_nodes(["eu", "us"], 1)
        for i in range(ROUNDS):
            report = SpotCheckReport(
                orders=[
                    inference_order(a, node, f"{i:016x}{n:016x}", request_sha256=f"{i:064x}")
                    for n, node in enumerate((first, second))
                ],
                agree=False,
            )
            with overlapping(dbs(a, b), "ComputeReputationBook.record"):
                results = await both(
                    a.client.send(routes.SPOT_CHECKS, report),
                    b.client.send(routes.SPOT_CHECKS, report),
                )
            done, _ = split(results, SkymeshError)
            assert sorted(r.recorded for r in done) == [False, True]
        s = spot_checks.c
        count = await a.service.db.read(
            lambda conn: conn.execute(sa.select(sa.func.count(s.serial))).scalar_one()
        )
        assert count == 2 * ROUNDS  # a row per order, each once
        r = compute_reputation.c
        folded = await a.service.db.read(
            lambda conn: conn.execute(sa.select(r.node_id, r.disagreed)).all()
        )
        assert sorted(folded) == sorted([(first.id, ROUNDS), (second.id, ROUNDS)])


# ---------------------------------------------------------------- rules over several rows


async def test_retiring_each_others_keys_at_once_leaves_one_current(
    tmp_path: Path, database_url: str
) -> None:
    """A write skew: each retirement reads two current keys and retires one of them;
    run one after the other, the second is refused (the network's last key)."""
    async with duo(tmp_path, database_url) as (a, b):

        def retire(h: Harness, other: Harness) -> Any:
            return h.admin.send(
                routes.RETIRE_COORDINATOR_KEY,
                None,
                params={"coordinator_id": other.service.identity.id},
            )

        with overlapping(dbs(a, b), "Keyring.retire"):
            results = await both(retire(a, b), retire(b, a))
        [_retired], [refused] = split(results, Conflict)
        assert refused.code == "LastCoordinatorKey"
        listed = await a.admin.send(routes.LIST_COORDINATOR_KEYS, None)
        assert sum(k.retired_at is None for k in listed.keys) == 1


async def test_inference_keys_created_at_the_cap_through_both_one_fits(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference_keys, "MAX_LIVE_KEYS", 3)
    async with duo(tmp_path, database_url) as (a, b):
        for i in range(2):
            await a.client.send(routes.CREATE_INFERENCE_KEY, CreateInferenceKeyRequest(name=f"{i}"))
        with overlapping(dbs(a, b), "InferenceKeys.create"):
            results = await both(
                a.client.send(routes.CREATE_INFERENCE_KEY, CreateInferenceKeyRequest(name="a")),
                b.client.send(routes.CREATE_INFERENCE_KEY, CreateInferenceKeyRequest(name="b")),
            )
        [_made], [refused] = split(results, Conflict)
        assert refused.code == "TooManyInferenceKeys"
        listed = await b.client.send(routes.LIST_INFERENCE_KEYS, None)
        assert len(listed.keys) == 3


async def test_a_key_revoked_through_one_is_refused_by_the_other_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with duo(tmp_path, database_url) as (a, b):
        made = await a.client.send(routes.CREATE_INFERENCE_KEY, CreateInferenceKeyRequest(name="k"))
        check = CheckInferenceKeyRequest(key=made.key)
        assert (await b.client.send(routes.CHECK_INFERENCE_KEY, check)).key_id == made.info.key_id
        revoke = a.client.send(
            routes.REVOKE_INFERENCE_KEY, None, params={"key_id": made.info.key_id}
        )
        again = b.client.send(
            routes.REVOKE_INFERENCE_KEY, None, params={"key_id": made.info.key_id}
        )
        first, second = await both(revoke, again)
        # both revoked it, and both say when: the first revocation's time
        assert first.revoked_at is not None and first == second
        with pytest.raises(NotFound):  # no cache of live keys: refused at once
            await b.client.send(routes.CHECK_INFERENCE_KEY, check)


async def test_a_replaced_or_revoked_join_token_is_refused_by_the_other_coordinator(
    tmp_path: Path, database_url: str
) -> None:
    """Admission is checked against the operator's row as committed, not against a
    coordinator's copy of the operators (up to its cache period old)."""
    async with duo(tmp_path, database_url) as (a, b):
        old = await a.admit("acme", "eu")
        await b.join(FakeNode("eu", "acme"), join_token=old)  # b's copy now knows it
        await a.admit("acme", "us")  # re-admitted through a: a new token replaces it
        with pytest.raises(Forbidden) as replaced:
            await b.join(FakeNode("eu", "acme"), join_token=old)
        assert replaced.value.code == "JoinTokenReplaced"
        new = await a.admit("acme", "us")
        await b.join(FakeNode("us", "acme"), join_token=new)
        await a.admin.send(routes.REVOKE_OPERATOR, None, params={"operator": "acme"})
        with pytest.raises(Forbidden) as revoked:
            await b.join(FakeNode("us", "acme"), join_token=new)
        assert revoked.value.code == "OperatorRevoked"
