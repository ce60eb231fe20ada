"""Chaos on one real `skymesh up` network: killed nodes, a whole region killed, full
disks, killed gateway and coordinator, lying nodes, a rotting disk.

Every test runs against real processes (`skymesh up`, the nodes, coordinator and
gateway it starts), drives them through boto3 and reads the outcome with the
`skymesh durability` CLI, as an operator would. The tests share one network to
stay lean: each leaves it healthy (every role running, every segment at its
optimal count) except the last two, which disqualify three nodes for good.

The network runs an explicit eager-repair scheme (``repair = optimal - 1``, so a
single lost piece is repaired and "no segment under its optimal count" is a state
repair reaches) with 1 MiB segments so small objects have several, and the
coordinator's loops at test speed, all through ``SKYMESH_COORDINATOR_*``. The
tests read k and optimal back from the durability report, never from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from skymesh.coordinator.overlay.reputation import ReputationParams
from skymesh.node.piecefile import data_size_at
from tests.process.netutil import Up, short_of_optimal, start_up

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
NODES = 12
REGIONS = ("eu-west", "us-east", "ap-south")  # four nodes each
FAST = {
    "SKYMESH_COORDINATOR_SCHEME": "4/7/8/8",  # 12 nodes: 4 spares; any 4 may be down
    "SKYMESH_COORDINATOR_MAX_SEGMENT_SIZE": str(MiB),
    "SKYMESH_COORDINATOR_AUDIT_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_AUDITS_PER_ROUND": "4",
    "SKYMESH_COORDINATOR_AUDIT_LAMBDA": "0.99",  # disqualified after ~5 failures, not 41
    "SKYMESH_COORDINATOR_REPAIR_CHECK_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_REPAIR_INTERVAL": "0.2",
    "SKYMESH_COORDINATOR_REPAIR_RETRY_AFTER": "2",
    "SKYMESH_COORDINATOR_GC_GRACE": "2",
    "SKYMESH_COORDINATOR_GC_INTERVAL": "1",
    "SKYMESH_COORDINATOR_RETAIN_INTERVAL": "3",
    "SKYMESH_COORDINATOR_RETAIN_GRACE": "20",  # longer than any store-to-commit here
    "SKYMESH_COORDINATOR_PENDING_UPLOAD_TTL": "20",  # abandoned uploads expire fast
}
# Object shapes: inline, one segment, several segments (plus a multipart of two parts).
SIZES = (100, 300_000, 2 * MiB + 500_000)

Check = Callable[[], object]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    from skymesh.network.up import NetworkSpec

    args = ["--regions", ",".join(REGIONS)]
    if "compute" in {f.name for f in fields(NetworkSpec)}:
        args.append("--no-compute")  # no model weights: repair would move them all
    started = time.monotonic()
    u = start_up(tmp_path_factory.mktemp("chaos") / "home", nodes=NODES, env=FAST, args=args)
    print(f"skymesh up with {NODES} nodes: {time.monotonic() - started:.1f} s")
    try:
        yield u
    finally:
        u.kill()


@pytest.fixture(autouse=True)
def _healthy(net: Up) -> None:
    """Each test starts from a whole network, whatever the one before it left."""
    for name in net.node_names():
        if net.alive(name):
            net.kill_role(name, signal.SIGCONT)
    for name in ("coordinator", "gateway", *net.node_names()):
        if not net.alive(name):
            net.restart(name)
    net.wait_online(net.node_names())
    # A node SIGKILLed often (the random kills) leaves audits unanswered and can be
    # suspended from new pieces for a while (correctly); tests that count on every
    # node taking pieces start once audits have brought it back.
    threshold = ReputationParams().unknown_suspend_threshold
    _wait(
        "nodes suspended for unanswered audits",
        lambda: [
            n
            for n, s in net.node_status().items()
            if s["unknown_score"] < threshold and not s["disqualified"]
        ],
        timeout=90,
    )


# ---------------------------------------------------------------- helpers


def _wait(what: str, check: Callable[[], Any], timeout: float, poll: float = 0.5) -> float:
    """Until ``check()`` returns a falsy problem; seconds taken. Fails showing the last one."""
    started = time.monotonic()
    while problem := check():
        assert time.monotonic() - started < timeout, f"{what} after {timeout:.0f} s: {problem}"
        time.sleep(poll)
    return time.monotonic() - started


def _full_strength(net: Up) -> Check:
    """A check: `skymesh durability` shows no segment under its optimal count."""

    def check() -> object:
        report = net.durability()
        if report["lost_total"]:
            return f"{report['lost_total']} segments below k: {report['lost']}"
        return short_of_optimal(report)

    return check


def _scheme(net: Up) -> dict[str, int]:
    schemes = net.durability()["schemes"]
    assert len(schemes) == 1, schemes
    return dict(schemes[0]["scheme"])


def _db(net: Up, sql: str, *args: object) -> int:
    conn = sqlite3.connect(
        f"file:{net.home / 'coordinator' / 'coordinator.db'}?mode=ro", uri=True, timeout=10
    )
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def _piece_files(net: Up, name: str = "*") -> list[Path]:
    return list((net.home / "nodes").glob(f"{name}/pieces/*/*"))


def _data(n: int, rng: random.Random) -> bytes:
    return rng.randbytes(n)


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _missing(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        return str(e.response["Error"]["Code"]) in ("404", "NoSuchKey")
    return False


def _put_multipart(s3: Any, bucket: str, key: str, data: bytes) -> None:
    """Two parts (5 MiB, the rest); aborted if a part fails, so nothing is left pending."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        parts = []
        for number, start in enumerate((0, 5 * MiB), start=1):
            chunk = data[start : start + 5 * MiB] if number == 1 else data[start:]
            etag = s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    except (ClientError, BotoCoreError):
        with contextlib.suppress(ClientError, BotoCoreError):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


@dataclass
class Stream:
    """A client thread: uploads of every shape (new keys and overwrites) and checked reads.

    ``acked`` holds, per key, the bytes of the last upload that returned success:
    what a read must return. ``errors`` are reads that failed or came back wrong.
    With ``lost_answers``, an upload that failed may also show whole (never in
    part): when the coordinator dies between its commit and its answer, no client
    can know, in S3 as here.
    """

    s3: Any
    bucket: str
    seed: int
    overwrite_keys: tuple[str, ...] = ()
    lost_answers: bool = False
    acked: dict[str, bytes] = field(default_factory=dict)
    unacked: dict[str, list[bytes]] = field(default_factory=dict)  # failed since the last ack
    tried: set[str] = field(default_factory=set)
    failed_puts: list[str] = field(default_factory=list)
    # (sent, ended) wall-clock times of every upload, acknowledged or not
    put_spans: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reads: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Stream:
        self.thread = threading.Thread(target=self._run, name="chaos-stream", daemon=True)
        self.thread.start()
        return self

    def finish(self, timeout: float = 90) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the client stream hung for {timeout:.0f} s"

    def _run(self) -> None:
        rng = random.Random(self.seed)
        i = 0
        while not self.stop.is_set():
            i += 1
            op = rng.random()
            if op < 0.3 and self.acked:
                self._read(rng.choice(sorted(self.acked)))
                continue
            if op < 0.45 and self.overwrite_keys:
                key = rng.choice(self.overwrite_keys)
            else:
                key = f"k{i:04d}"
            multipart = rng.random() < 0.1
            size = 5 * MiB + 200_000 if multipart else rng.choice(SIZES)
            data = _data(size, rng)
            self.tried.add(key)
            sent = time.time()
            try:
                if multipart:
                    _put_multipart(self.s3, self.bucket, key, data)
                else:
                    self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            except (ClientError, BotoCoreError) as e:
                self.put_spans.append((sent, time.time()))
                self.failed_puts.append(f"{key}: {e}")
                self.unacked.setdefault(key, []).append(data)
                continue
            self.put_spans.append((sent, time.time()))
            self.acked[key] = data
            self.unacked.pop(key, None)

    def _read(self, key: str) -> None:
        self.reads += 1
        try:
            if _get(self.s3, self.bucket, key) != self.acked[key]:
                self.errors.append(f"{key}: wrong bytes")
        except (ClientError, BotoCoreError) as e:
            self.errors.append(f"{key}: {e}")

    def verify(self) -> None:
        """Every acknowledged upload reads back exactly; every other key is invisible."""
        for key in sorted(self.tried):
            maybe = self.unacked.get(key, []) if self.lost_answers else []
            if key not in self.acked and _missing(self.s3, self.bucket, key):
                continue
            got = _get(self.s3, self.bucket, key)
            if key in self.acked and got == self.acked[key]:
                continue
            assert got in maybe, (
                f"{key}: {len(got)} bytes that no acknowledged upload wrote"
                f" ({len(self.unacked.get(key, []))} failed attempts)"
            )


# ---------------------------------------------------------------- the tests


def test_random_sigkills_during_a_stream(net: Up) -> None:
    """Nodes die (SIGKILL) and come back at random under uploads and reads."""
    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="kills")
    s3.put_object(Bucket="kills", Key="seed", Body=b"x" * 300_000)
    scheme = _scheme(net)
    max_down = scheme["total"] - scheme["k"]
    stream = Stream(s3, "kills", seed=1, overwrite_keys=("ow-a", "ow-b")).start()
    rng = random.Random(2)
    down: list[str] = []
    kills = 0
    most_down = 0
    deadline = time.monotonic() + 25
    try:
        while time.monotonic() < deadline and stream.thread and stream.thread.is_alive():
            time.sleep(rng.uniform(0.3, 1.5))
            if down and (len(down) >= max_down or rng.random() < 0.4):
                # Back only once it serves again, so no more than max_down are ever out.
                net.restart(down.pop(rng.randrange(len(down))), wait="serving")
            else:
                name = rng.choice([n for n in net.node_names() if n not in down])
                net.kill_role(name)
                down.append(name)
                kills += 1
                most_down = max(most_down, len(down))
    finally:
        stream.finish()
        for name in down:
            net.restart(name, wait="serving")
    net.wait_online(net.node_names())
    assert not stream.errors, f"reads failed with at most {max_down} nodes down: {stream.errors}"
    stream.verify()
    took = _wait("segments short of optimal", _full_strength(net), timeout=90)
    print(
        f"kills {kills} (at most {most_down} down at once), uploads acked {len(stream.acked)},"
        f" failed {len(stream.failed_puts)}, reads {stream.reads}; full strength {took:.1f} s"
        f" after the last restart; failures: {stream.failed_puts[:5]}"
    )
    assert kills >= 5 and len(stream.acked) >= 10, "the chaos did too little to prove anything"
    _empty(s3, "kills")


def test_a_whole_region_stopped(net: Up) -> None:
    """SIGKILL every node of one region: reads stay exact, uploads go on, repair refills.

    SIGKILL rather than SIGSTOP: a hung (stopped) source stalls the repair worker
    for its 60 s node timeout (see the durability doc's chaos section).
    """
    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="region")
    rng = random.Random(3)
    objects = {f"r{i}": _data(size, rng) for i, size in enumerate(SIZES * 2)}
    for key, data in objects.items():
        s3.put_object(Bucket="region", Key=key, Body=data)
    region = [n for n in net.node_names() if net.region(n) == REGIONS[0]]
    for name in region:
        net.kill_role(name)
    # At once, while the coordinator still lists them online, and again once it knows.
    for key, data in objects.items():
        assert _get(s3, "region", key) == data, key
    offline = _wait("region still online", lambda: _online(net, region), timeout=30, poll=0.2)
    started = time.monotonic()
    for key, data in objects.items():
        assert _get(s3, "region", key) == data, key
    reads = time.monotonic() - started
    for i, size in enumerate(SIZES):
        data = _data(size, rng)
        s3.put_object(Bucket="region", Key=f"during{i}", Body=data)
        objects[f"during{i}"] = data
    repaired = _wait("segments short of optimal", _full_strength(net), timeout=120)
    for key, data in objects.items():
        assert _get(s3, "region", key) == data, key
    print(
        f"region {region} killed: offline after {offline:.1f} s, {len(objects) - 3}"
        f" reads in {reads:.1f} s, 3 uploads succeeded, full strength {repaired:.1f} s later"
    )
    for name in region:
        net.restart(name, wait="serving")
    net.wait_online(region)
    for key, data in objects.items():
        assert _get(s3, "region", key) == data, key
    _wait("segments short of optimal", _full_strength(net), timeout=60)
    _empty(s3, "region")


def _empty(s3: Any, bucket: str) -> None:
    """Delete a finished test's objects: later repairs have less to move."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def _online(net: Up, names: list[str]) -> list[str]:
    status = net.node_status()
    return [n for n in names if status[n]["online"]]


def test_full_disks(net: Up) -> None:
    """Two nodes with no room (tiny capacity) and two whose disk fails writes with ENOSPC."""
    tiny, enospc = ["node-02", "node-05"], ["node-03", "node-06"]
    for name in tiny + enospc:
        net.kill_role(name)
    for name in tiny:
        net.restart(name, env={"SKYMESH_NODE_CAPACITY_BYTES": "1000"})
    for name in enospc:
        net.restart(name, fault="full")
    full = tiny + enospc
    before = {n: set(_piece_files(net, n)) for n in full}
    rows = {n: _pieces_on(net, n) for n in full}
    used = {n: _healthz(net, n)["used_bytes"] for n in full}
    retries = _log_count(net, "gateway", "retrying without")

    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="full")
    rng = random.Random(4)
    objects = {f"f{i}": _data(size, rng) for i, size in enumerate(SIZES * 2)}
    for key, data in objects.items():
        s3.put_object(Bucket="full", Key=key, Body=data)
    for key, data in objects.items():
        assert _get(s3, "full", key) == data, key

    refused = _log_count(net, "gateway", "retrying without") - retries
    assert refused >= 1, "no upload ever reached a node with a full disk"
    # Garbage of earlier tests may still leave these nodes meanwhile; nothing may arrive.
    for name in full:
        new = set(_piece_files(net, name)) - before[name]
        assert not new, f"{name} stored {len(new)} pieces"
        assert _pieces_on(net, name) <= rows[name], f"the coordinator counts a piece on {name}"
        assert _healthz(net, name)["used_bytes"] <= used[name], f"{name} counts half a piece"
        assert not list((net.home / "nodes" / name / "tmp").iterdir()), f"{name} kept a temp file"
    print(f"4 full nodes: {len(objects)} uploads succeeded; {refused} segment attempts retried")
    for name in full:
        net.kill_role(name)
        net.restart(name)
    _wait("segments short of optimal", _full_strength(net), timeout=60)
    _empty(s3, "full")


def _pieces_on(net: Up, name: str) -> int:
    return _db(net, "SELECT count(*) FROM pieces WHERE node_id = ?", net.node_id(name))


def _healthz(net: Up, name: str) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{net.node_port(name)}/healthz") as resp:
        return dict(json.loads(resp.read()))


def _log_count(net: Up, name: str, text: str) -> int:
    return (net.home / "logs" / f"{name}.log").read_text(errors="replace").count(text)


class _StallingBody(io.RawIOBase):
    """A request body that stops half way through its send until released.

    botocore reads a body once to sign it (http) and again to send it; ``arm()``
    from its ``before-send`` event makes only the sending pass stall, so the
    gateway holds half of the object when the test kills it.
    """

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._armed = False
        self.reached = threading.Event()
        self.release = threading.Event()

    def arm(self, **_: object) -> None:
        self._armed = True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._armed and self._pos >= len(self._data) // 2 and not self.release.is_set():
            self.reached.set()
            self.release.wait(60)
        n = min(len(buffer), len(self._data) - self._pos, 64 * 1024)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def _orphans(net: Up) -> Check:
    """A check: every piece file on the nodes is one the coordinator references, nothing
    waits as garbage and no upload is pending."""

    def check() -> object:
        files = len(_piece_files(net))
        rows = _db(net, "SELECT count(*) FROM pieces")
        garbage = _db(net, "SELECT count(*) FROM garbage_pieces")
        pending = _db(net, "SELECT count(*) FROM pending_streams")
        if files == rows and not garbage and not pending:
            return None
        return f"{files} piece files, {rows} referenced, {garbage} garbage, {pending} pending"

    return check


def test_gateway_and_coordinator_killed(net: Up) -> None:
    """The gateway dies mid-upload, the coordinator mid-commit; both come back.

    The old version stays readable, no partial object shows, and garbage
    collection with reconciliation removes every orphaned piece.
    """
    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="crash")
    rng = random.Random(5)
    v1 = _data(2 * MiB, rng)
    s3.put_object(Bucket="crash", Key="doc", Body=v1)
    _wait("orphans from earlier tests", _orphans(net), timeout=90)
    baseline = len(_piece_files(net))

    # The gateway: SIGKILL once it holds half of an 8 MiB overwrite.
    body = _StallingBody(_data(8 * MiB, rng))
    s3.meta.events.register("before-send.s3.PutObject", body.arm)
    outcome: list[BaseException | None] = []

    def put() -> None:
        try:
            s3.put_object(Bucket="crash", Key="doc", Body=body)
            outcome.append(None)
        except (ClientError, BotoCoreError) as e:
            outcome.append(e)

    uploader = threading.Thread(target=put, daemon=True)
    uploader.start()
    assert body.reached.wait(30), "the overwrite never got half way"
    time.sleep(1.0)  # the gateway stores and commits the segments it has
    net.kill_role("gateway")
    body.release.set()
    uploader.join(30)
    s3.meta.events.unregister("before-send.s3.PutObject", body.arm)
    assert outcome and outcome[0] is not None, f"the overwrite did not fail: {outcome}"
    peak = len(_piece_files(net))
    assert peak > baseline, "the killed upload stored no piece: nothing was tested"
    net.restart("gateway")
    head = s3.head_object(Bucket="crash", Key="doc")
    assert head["ContentLength"] == len(v1)
    assert head["ETag"].strip('"') == hashlib.md5(v1).hexdigest()
    assert _get(s3, "crash", "doc") == v1
    listed = s3.list_objects_v2(Bucket="crash")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("doc", len(v1))]

    # The coordinator: SIGKILL at a random moment of a stream of commits, then back.
    stream = Stream(s3, "crash", seed=6, overwrite_keys=("doc",), lost_answers=True)
    stream.acked["doc"] = v1
    stream.tried.add("doc")
    stream.start()
    time.sleep(rng.uniform(2, 4))
    down = time.time()
    net.kill_role("coordinator")
    time.sleep(2)
    net.restart("coordinator")
    up = time.time()
    net.wait_online(net.node_names(), since=time.time())
    time.sleep(2)
    stream.finish()
    stream.verify()
    # uploads met the outage: they failed (a retryable 5xx), or the gateway waited it
    # out (a segment's attempts are retried); which one is a matter of timing
    met = [span for span in stream.put_spans if span[0] < up and span[1] > down]
    assert met, f"no upload was under way while the coordinator was down: {stream.put_spans}"
    peak = max(peak, len(_piece_files(net)))
    took = _wait("orphaned pieces", _orphans(net), timeout=120, poll=1)
    final = len(_piece_files(net))
    assert final < peak
    print(
        f"piece files: {baseline} before, {peak} at the peak, {final} after collection"
        f" ({took:.0f} s; all referenced); coordinator outage: {len(stream.acked) - 1}"
        f" uploads acked, {len(stream.failed_puts)} failed, {len(stream.errors)} reads failed"
    )
    _wait("segments short of optimal", _full_strength(net), timeout=60)
    _empty(s3, "crash")


def test_lying_nodes_are_disqualified_and_repaired(net: Up) -> None:
    """Two nodes lie: one serves wrong bytes, one forges Merkle proofs over true bytes.

    Near the end of the module: it leaves both disqualified for good.
    """
    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="liars")
    rng = random.Random(7)
    objects = {f"l{i}": _data(2 * MiB + 300_000 * i, rng) for i in range(4)}
    for key, data in objects.items():
        s3.put_object(Bucket="liars", Key=key, Body=data)
    liars = {"node-08": "corrupt", "node-09": "forge"}
    for name, fault in liars.items():
        net.kill_role(name)
        net.restart(name, fault=fault)
    fallbacks = _log_count(net, "gateway", "re-reading with Merkle checks")
    started = time.monotonic()
    for _ in range(2):
        for key, data in objects.items():
            assert _get(s3, "liars", key) == data, key

    def undisqualified() -> object:
        status = net.node_status()
        return {
            n: round(status[n]["audit_score"], 3) for n in liars if not status[n]["disqualified"]
        }

    disqualified = _wait("not disqualified", undisqualified, timeout=90)
    for key, data in objects.items():
        assert _get(s3, "liars", key) == data, key

    def held() -> object:
        return {n: c for n in liars if (c := _pieces_on(net, n))}

    _wait("pieces still on the liars", held, timeout=120)
    repaired = _wait("segments short of optimal", _full_strength(net), timeout=60)
    for key, data in objects.items():
        assert _get(s3, "liars", key) == data, key
    print(
        f"liars disqualified {disqualified:.1f} s after they started lying, full strength"
        f" {time.monotonic() - started:.1f} s after ({repaired:.1f} s after the last piece"
        f" left them); reads that fell back to Merkle checks:"
        f" {_log_count(net, 'gateway', 're-reading with Merkle checks') - fallbacks}"
    )


def _rot(pieces_dir: Path, rng: random.Random) -> int:
    """Overwrite random bytes of every piece's data (their records untouched)."""
    count = 0
    for path in pieces_dir.rglob("*"):
        if not path.is_file():
            continue
        data = bytearray(path.read_bytes())
        size = data_size_at(path)
        for _ in range(max(1, size // 4096)):
            data[rng.randrange(size)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        count += 1
    return count


def test_rotting_disk_is_audited_and_repaired(net: Up) -> None:
    """Random bytes overwritten in one node's piece files while it runs.

    Reads stay correct (readers verify every byte), audits catch the node and
    disqualify it, and repair rebuilds its pieces elsewhere. Last of the module.
    """
    s3 = net.s3(retries=1)
    s3.create_bucket(Bucket="rot")
    rng = random.Random(8)
    objects = {f"o{i}": _data(600_000 + 70_001 * i, rng) for i in range(3)}
    for key, data in objects.items():
        s3.put_object(Bucket="rot", Key=key, Body=data)
    victim = next(n for n in reversed(net.node_names()) if _pieces_on(net, n))
    assert _rot(net.home / "nodes" / victim / "pieces", rng) >= 1
    # Before any audit or repair, every read is already correct.
    for key, data in objects.items():
        assert _get(s3, "rot", key) == data, key
    started = time.monotonic()
    _wait("not disqualified", lambda: not net.node_status()[victim]["disqualified"], timeout=90)
    _wait("pieces still on the rotten node", lambda: _pieces_on(net, victim), timeout=120)
    _wait("segments short of optimal", _full_strength(net), timeout=60)
    for key, data in objects.items():
        assert _get(s3, "rot", key) == data, key
    print(f"rotten {victim}: disqualified and repaired in {time.monotonic() - started:.1f} s")
