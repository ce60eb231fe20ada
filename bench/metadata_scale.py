"""Metadata at scale on PostgreSQL: placement among many nodes, a bucket of many objects,
and requests per second through one and through two coordinators.

    python -m bench.metadata_scale              # issue 14's sizes: 10,000 nodes, 10 million objects
    python -m bench.metadata_scale --quick      # 1,000 nodes, 200,000 objects: a minute or two

Real coordinator processes (``skymesh coordinator``) on a real PostgreSQL server
(:class:`~skymesh.testing.postgres.PostgresServer`), called over HTTP as gateways
call them. The nodes and the bulk of the objects are written straight into the
database (registering 10,000 node processes or uploading 10 million objects through
the API would measure the set-up, not the metadata); everything measured goes
through the coordinator's API. Requests per second come from ``wrk`` (Debian's
package), which spends far less CPU per request than a Python load generator would.

Measures, never asserts. Prints a table and writes ``.bench/out/metadata_scale.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

import skymesh
from bench import procs
from bench.cpu import process_cpu
from skymesh.admin import AdminClient
from skymesh.coordinator.overlay.reputation import ReputationParams
from skymesh.rpc import RpcClient
from skymesh.testing.postgres import PostgresServer
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    BeginObjectRequest,
    CreateBucketRequest,
    ListObjectsRequest,
    ObjectRequest,
    PutInlineRequest,
)

OUT = Path(__file__).resolve().parent.parent / ".bench" / "out"
MiB = 1024 * 1024
BUCKET = "scale"
REGIONS = tuple(f"region-{i}" for i in range(10))
OPERATORS = 40
PAGE = 1000

# Loops that would compete with the measurement are pushed far out: this measures the API.
_QUIET = {
    "SKYMESH_COORDINATOR_OFFLINE_AFTER": "1e9",
    "SKYMESH_COORDINATOR_AUDIT_INTERVAL": "1e9",
    "SKYMESH_COORDINATOR_REPAIR_CHECK_INTERVAL": "1e9",
    "SKYMESH_COORDINATOR_REPAIR_INTERVAL": "1e9",
    "SKYMESH_COORDINATOR_GC_INTERVAL": "1e9",
    "SKYMESH_COORDINATOR_RETAIN_INTERVAL": "0",
    "SKYMESH_COORDINATOR_STALE_NODE_AFTER": "0",
}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Coordinators:
    """``skymesh coordinator`` processes on one database, each on its own port."""

    def __init__(self, root: Path, database_url: str, admin_token: str) -> None:
        self.root = root
        self.database_url = database_url
        self.admin_token = admin_token
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def start(self) -> str:
        i = len(self.procs)
        port = procs.free_port_block(1)
        env = {
            **os.environ,
            **_QUIET,
            "SKYMESH_COORDINATOR_DATA_DIR": str(self.root / f"coordinator-{i}"),
            "SKYMESH_COORDINATOR_PORT": str(port),
            "SKYMESH_COORDINATOR_DATABASE_URL": self.database_url,
            "SKYMESH_COORDINATOR_ADMIN_TOKEN": self.admin_token,
        }
        argv = [sys.executable, "-m", "skymesh", "coordinator", "--log-level", "WARNING"]
        self.procs.append(procs.spawn(argv, self.root / f"coordinator-{i}.log", env=env))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                    raise RuntimeError(f"coordinator {i} did not start: see {self.root}") from None
                time.sleep(0.2)
        self.urls.append(url)
        return url

    def stop(self) -> None:
        procs.stop(self.procs)


# ---------------------------------------------------------------- seeding (straight SQL)


def seed_nodes(dsn: str, count: int) -> None:
    """``count`` admitted, vetted, online nodes of OPERATORS operators over REGIONS."""
    now = time.time()
    params = ReputationParams()
    regions = json.dumps(list(REGIONS))
    with psycopg.connect(dsn, autocommit=False) as conn:
        with conn.cursor() as cur:
            for o in range(OPERATORS):
                cur.execute(
                    "INSERT INTO operators (name, regions, compute, created_at, token_id,"
                    " token_issued_at, token_expires_at) VALUES (%s, %s, false, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (f"op-{o}", regions, now, secrets.token_hex(8), now, now + 86400),
                )
            with cur.copy(
                "COPY nodes (node_id, public_key, address, region, operator, capacity_bytes,"
                " used_bytes, version, joined_at, last_seen) FROM STDIN"
            ) as copy:
                for i in range(count):
                    octets = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
                    copy.write_row(
                        (
                            f"n{i:06d}{secrets.token_hex(12)}",
                            secrets.token_bytes(32),
                            f"http://{octets}:7800",
                            REGIONS[i % len(REGIONS)],
                            f"op-{i % OPERATORS}",
                            2**40,
                            0,
                            skymesh.__version__,
                            now,
                            now,
                        )
                    )
            cur.execute(
                "INSERT INTO node_reputation (node_id, audit_alpha, audit_beta, unknown_alpha,"
                " unknown_beta, audits_success, audits_failed, audits_unknown, vetted_at)"
                " SELECT node_id, %s, 0, %s, 0, 100, 0, 0, %s FROM nodes",
                (params.audit_alpha0, params.unknown_alpha0, now),
            )
        conn.commit()


def grow_bucket(dsn: str, bucket: str, upto: int, log: Callable[[str], None]) -> None:
    """Add committed objects ``data/00000000``... until ``bucket`` holds ``upto`` of them.

    Generated inside the server (``generate_series``), a million rows per statement.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM objects WHERE bucket = %s AND key LIKE 'data/%%'", (bucket,)
        ).fetchone()
        have = int(row[0]) if row else 0
        step = 1_000_000
        started = time.monotonic()
        while have < upto:
            end = min(upto, have + step)
            conn.execute(
                "INSERT INTO objects (bucket, key, seq, stream_id, size, etag, created_at,"
                " encrypted_key, encrypted_metadata, segment_count, latest, delete_marker,"
                " null_version)"
                " SELECT %s, 'data/' || lpad(i::text, 9, '0'), 0, md5(%s || i::text), 1024,"
                " md5(i::text), extract(epoch from now()), '\\x00'::bytea, ''::bytea, 1,"
                " true, false, true FROM generate_series(%s::bigint, %s::bigint) AS i",
                (bucket, bucket, have, end - 1),
            )
            have = end
            log(f"  {have:,} objects ({time.monotonic() - started:.0f} s)")
        conn.execute("ANALYZE objects")


# ---------------------------------------------------------------- measurements


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    """Milliseconds of each of ``n`` calls, one after another."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def settle(pid: int, timeout: float = 60.0) -> None:
    """Wait until process ``pid`` spends under 5 % of a core for a whole second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu(pid)
        await asyncio.sleep(1.0)
        if process_cpu(pid) - before < 0.05:
            return


async def placement_ms(rpc: RpcClient, n: int) -> list[float]:
    """Begin an object of one 64 MiB segment: the coordinator places the segment and
    signs an order for each chosen node."""
    key = secrets.token_bytes(48)

    async def begin(i: int) -> object:
        req = BeginObjectRequest(
            bucket=BUCKET, key=f"placed/{i}", encrypted_key=key, first_segment_size=64 * MiB
        )
        return await rpc.send(routes.BEGIN_OBJECT, req)

    await timed(20, begin)  # warm the registry cache and the connection pool
    return await timed(n, begin)


async def listing_rate(rpc: RpcClient, start_after: str, pages: int) -> float:
    """Keys per second listing ``pages`` pages of PAGE keys of data/, from ``start_after``."""
    listed = 0
    t0 = time.perf_counter()
    after = start_after
    for _ in range(pages):
        page = await rpc.send(
            routes.LIST_OBJECTS,
            ListObjectsRequest(bucket=BUCKET, prefix="data/", start_after=after, limit=PAGE),
        )
        listed += len(page.entries)
        if not page.entries:
            break
        after = page.entries[-1].key
    return listed / (time.perf_counter() - t0)


async def commit_ms(rpc: RpcClient, tag: str, n: int) -> list[float]:
    """Small objects put whole (inline): one write transaction each."""

    async def put(i: int) -> object:
        req = PutInlineRequest(
            bucket=BUCKET,
            key=f"new/{tag}/{i:06d}",
            size=0,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            encrypted_key=b"\x00" * 48,
            encrypted_metadata=b"",
        )
        return await rpc.send(routes.PUT_INLINE, req)

    return await timed(n, put)


def tree_cpu(pid: int | None) -> float:
    """CPU seconds of ``pid`` and its children (PostgreSQL's postmaster and backends)."""
    if pid is None:
        return 0.0
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    return sum(process_cpu(p) for p in pids)


def db_conflicts(urls: Sequence[str], admin_token: str) -> int:
    """Write transactions run again after a serialization failure or deadlock, summed
    over the coordinators at ``urls`` (their ``/metrics``)."""
    total = 0.0
    for url in urls:
        req = urllib.request.Request(
            url + "/metrics", headers={"Authorization": f"Bearer {admin_token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if (
                line.startswith("skymesh_coordinator_db_retries_total")
                and 'reason="conflict"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def wrk_rps(urls: Sequence[str], api_key: str, script: Path, seconds: int, conns: int) -> float:
    """Requests per second, one ``wrk`` per coordinator URL (sharing ``conns``), summed."""
    per = max(1, conns // len(urls))
    runs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{per}",
                f"-d{seconds}s",
                "-s",
                str(script),
                url,
                "-H",
                f"Authorization: Bearer {api_key}",
                "--",
                secrets.token_hex(4),  # the commit script's key prefix, new per process
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for url in urls
    ]
    total = 0.0
    for run in runs:
        out, _ = run.communicate()
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if not found:
            raise RuntimeError(f"wrk printed no rate:\n{out}")
        if errors:
            print(f"  wrk: {errors.group(1)} non-2xx answers", file=sys.stderr)
        total += float(found.group(1))
    return total


def _wrk_script(path: Path, kind: str) -> Path:
    """A wrk script: ``head`` asks for one object's metadata; ``commit`` puts a new
    empty object under a key unique to the request."""
    if kind == "head":
        body = json.dumps({"bucket": BUCKET, "key": "data/000000042"})
        text = (
            'wrk.method = "POST"\n'
            f"wrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.path = "/v1/objects/head"\n'
        )
    else:
        key = base64.b64encode(b"\x00" * 48).decode()
        text = (
            # each wrk process names its keys by the tag it is given (wrk ... -- <tag>)
            'local n = 0\nlocal tag = "t"\nfunction init(args) tag = args[1] or "t" end\n'
            "request = function()\n"
            "  n = n + 1\n"
            '  local body = \'{"bucket":"' + BUCKET + '","key":"rps/\' .. tag .. "/" .. n ..'
            ' \'","size":0,"etag":"d41d8cd98f00b204e9800998ecf8427e","encrypted_key":"'
            + key
            + '","encrypted_metadata":""}\'\n'
            '  return wrk.format("POST", "/v1/objects/put-inline", nil, body)\n'
            "end\n"
        )
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": os.uname().nodename,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "nodes": args.nodes,
        "objects": args.objects,
    }

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # durable like a production server: fsync and synchronous commits on
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    server = PostgresServer(settings=durable).start()
    coordinators: Coordinators | None = None
    try:
        url = server.create_database("scale")
        dsn = server.dsn("scale")
        admin_token = secrets.token_urlsafe(16)
        coordinators = Coordinators(root, url, admin_token)
        first = coordinators.start()
        log(f"seeding {args.nodes:,} nodes")
        seed_nodes(dsn, args.nodes)
        async with aiohttp.ClientSession() as session:
            admin = AdminClient(first, admin_token, session)
            credential = await admin.create_credential("scale")
            api_key = credential.api_key
            rpc = RpcClient(first, session, {"Authorization": f"Bearer {api_key}"})
            await rpc.send(routes.CREATE_BUCKET, CreateBucketRequest(name=BUCKET))
            await asyncio.sleep(2.5)  # the registry's node cache reloads (2 s)
            pid = coordinators.procs[0].pid
            # the loops' first rounds over 10,000 just-seeded nodes (audit picks,
            # reputation, the repair checker) are not placement: let them finish
            await settle(pid)

            log("placement")
            cpu0 = process_cpu(pid)
            ms = await placement_ms(rpc, args.placements)
            # the coordinator's CPU per placement (user + system): on a shared machine
            # this, not the wall clock, says what a placement costs it
            cpu_ms = (process_cpu(pid) - cpu0) * 1000 / (args.placements + 20)
            results["placement_ms"] = {
                "p50": _percentile(ms, 0.5),
                "p95": _percentile(ms, 0.95),
                "coordinator_cpu_ms": cpu_ms,
            }
            log(
                f"placement p50 {results['placement_ms']['p50']:.1f} ms, coordinator CPU {cpu_ms:.1f} ms each"
            )
            if args.placement_only:
                return results

            for size in (10_000, args.objects):
                log(f"bucket of {size:,} objects")
                grow_bucket(dsn, BUCKET, size, log)
                middle = f"data/{size // 2:09d}"
                results[f"list_keys_per_s_{size}"] = {
                    "from_start": await listing_rate(rpc, "", args.pages),
                    "from_middle": await listing_rate(rpc, middle, args.pages),
                }
                ms = await commit_ms(rpc, str(size), args.commits)
                results[f"commit_ms_{size}"] = {
                    "p50": _percentile(ms, 0.5),
                    "p95": _percentile(ms, 0.95),
                    "mean": statistics.fmean(ms),
                }
                # a point read in a bucket of this size, for the wrk runs below
                await rpc.send(
                    routes.HEAD_OBJECT, ObjectRequest(bucket=BUCKET, key="data/000000042")
                )

        for kind in ("head", "commit"):
            script = _wrk_script(root / f"{kind}.lua", kind)
            rates = []
            for n in (1, 2):
                if len(coordinators.urls) < n:
                    coordinators.start()
                urls = coordinators.urls[:n]
                # where the CPU goes (the machine's cores are the limit on a small VM),
                # and how often PostgreSQL made a write run again
                pids = [p.pid for p in coordinators.procs[:n]]
                before = (
                    sum(process_cpu(p) for p in pids),
                    tree_cpu(server.pid),
                    os.times().children_user + os.times().children_system,
                    db_conflicts(urls, admin_token),
                )
                rate = wrk_rps(urls, api_key, script, args.seconds, args.conns)
                after = (
                    sum(process_cpu(p) for p in pids),
                    tree_cpu(server.pid),
                    os.times().children_user + os.times().children_system,
                    db_conflicts(urls, admin_token),
                )
                requests = rate * args.seconds
                cpu = {
                    f"{who}_cpu_ms_per_request": (a - b) * 1000 / max(requests, 1)
                    for who, a, b in zip(
                        ("coordinators", "postgres", "wrk"), after, before, strict=False
                    )
                }
                rates.append(rate)
                results[f"rps_{kind}_{n}"] = {
                    "rps": rate,
                    **cpu,
                    "conflict_retries": after[3] - before[3],
                }
                log(f"{kind}, {n} coordinator(s): {rate:.0f}/s {results[f'rps_{kind}_{n}']}")
            one, two = rates
            results[f"rps_{kind}"] = {"one": one, "two": two, "ratio": two / one if one else 0}
    finally:
        if coordinators is not None:
            coordinators.stop()
        server.close()
    return results


def table(r: dict[str, Any]) -> str:
    p = r["placement_ms"]
    placement = (
        "placement, one 64 MiB segment among " + f"{r['nodes']:,} nodes",
        f"p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms; coordinator CPU"
        f" {p['coordinator_cpu_ms']:.1f} ms each",
    )
    if "rps_commit" not in r:  # --placement-only
        return "  ".join(placement)
    small, big = 10_000, r["objects"]
    ls, lb = r[f"list_keys_per_s_{small}"], r[f"list_keys_per_s_{big}"]
    cs, cb = r[f"commit_ms_{small}"], r[f"commit_ms_{big}"]
    rows = [
        placement,
        (
            f"listing, keys/s at {small:,} objects (start / middle)",
            f"{ls['from_start']:,.0f} / {ls['from_middle']:,.0f}",
        ),
        (
            f"listing, keys/s at {big:,} objects (start / middle)",
            f"{lb['from_start']:,.0f} / {lb['from_middle']:,.0f}",
        ),
        (
            f"commit (inline put), ms at {small:,} / {big:,} objects",
            f"p50 {cs['p50']:.1f} / {cb['p50']:.1f}",
        ),
    ]
    for kind in ("head", "commit"):
        v = r[f"rps_{kind}"]
        rows.append(
            (
                f"{kind} requests/s, one / two coordinators",
                f"{v['one']:,.0f} / {v['two']:,.0f} ({v['ratio']:.2f}x)",
            )
        )
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metadata_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1,000 nodes, 200,000 objects")
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=10_000_000)
    parser.add_argument("--placements", type=int, default=300, help="segments placed")
    parser.add_argument("--pages", type=int, default=20, help="listing pages of 1,000 keys")
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=15, help="each wrk run")
    parser.add_argument("--conns", type=int, default=16, help="wrk connections in all")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--placement-only", action="store_true", help="measure placement, then stop"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.objects, args.seconds = 1_000, 200_000, 5
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="skymesh-scale-"))
    try:
        results = asyncio.run(run(args, root))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "metadata_scale.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
