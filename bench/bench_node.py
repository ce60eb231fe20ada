"""One node's CPU per piece, driven as the gateway drives it in the 512 MiB benchmark.

    .venv/bin/python bench/bench_node.py [--pieces 300] [--windows 0,129] [--perf]

A node (its piece routes on a real disk store, no fsync, the process tuning of a
role, behind the node's front protocol, ``node/front.py``, where the tree has one)
runs in its own process; this one stores ``--pieces`` pieces of boto3's 8 MiB
part (129 stripes of 10,923 bytes: 1.41 MB, scheme 6-of-10 on 12 nodes), four
at a time as the gateway's uploads overlap, then reads each back in the reader's
requests (``--windows``: stripe offsets; 0,129, one request per node, is how the
streaming reader asks for an 8 MiB range; 0,4,68,129 is the windowed reader before it). It prints the node's CPU seconds per GB of piece bytes, per piece and per
request, and this process's (the gateway's side of the transfer). ``--perf`` records
the node with ``perf record`` and prints where its CPU went by library. Measures,
never asserts; the VM swings ±30 %, so compare interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bench import procs
from bench.cpu import process_cpu
from skymesh.piecetransfer import exchange
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import AddressedOrder, DownloadPiece
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import Signed, sign

FRAGMENT = 10_923  # one 64 KiB stripe's share of a piece at k = 6
STRIPES = 129  # an 8 MiB part
SIZE = FRAGMENT * STRIPES
CONCURRENCY = 4
COORD = Identity.from_seed(b"c" * 32)
NODE = Identity.from_seed(b"n" * 32)

_SERVE = """
import asyncio, signal, sys
from pathlib import Path
from aiohttp import web
from skymesh.node.api import create_app
from skymesh.node.diskstore import DiskPieceStore
try:
    from skymesh.node.front import FrontSite as Site  # the node's own front, where it has one
except ImportError:
    Site = web.TCPSite
from skymesh.node.orders import OrderVerifier, SerialStore
from skymesh.tuning import tune_process
from skymesh.wire.identity import Identity

async def main() -> None:
    port, d = int(sys.argv[1]), Path(sys.argv[2])
    node, coord = Identity.from_seed(b"n" * 32), Identity.from_seed(b"c" * 32)
    store = DiskPieceStore(d / "store", 1 << 40, 64 * 1024, fsync=False)
    verifier = OrderVerifier(node.id, [coord.public_key], SerialStore(d / "orders.sqlite3"))
    runner = web.AppRunner(create_app(store, verifier, node), access_log=None)
    await runner.setup()
    await Site(runner, "127.0.0.1", port).start()
    tune_process()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
"""


def _order(root: str, action: PieceAction) -> Signed:
    now = time.time()
    order = Order(
        serial=secrets.token_hex(16),
        coordinator_id=COORD.id,
        node_id=NODE.id,
        piece_id=derive_piece_id(root, 0),
        action=action,
        max_bytes=2 * SIZE,
        expires_at=now + 3600,
        issued_at=now,
    )
    return sign(COORD, order)


async def _drive(address: str, pid: int, pieces: int, cuts: list[int]) -> None:
    data = os.urandom(SIZE)
    roots = [secrets.token_hex(32) for _ in range(pieces)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def body() -> AsyncIterator[memoryview]:
        view = memoryview(data)
        for i in range(0, SIZE, 32 * FRAGMENT):  # the uploader's batches of 32 stripes
            yield view[i : i + 32 * FRAGMENT]

    async with aiohttp.ClientSession() as session:

        async def put(root: str) -> None:
            async with gate:
                target = AddressedOrder(
                    piece_num=0,
                    node_id=NODE.id,
                    address=address,
                    region="r",
                    order=_order(root, PieceAction.PUT),
                )
                await exchange.put_piece(session, target, root, body(), SIZE)

        async def get(root: str) -> None:
            async with gate:
                piece = DownloadPiece(
                    piece_num=0,
                    node_id=NODE.id,
                    address=address,
                    region="r",
                    merkle_root=b"",
                    order=_order(root, PieceAction.GET),
                )
                for a, b in itertools.pairwise(cuts):
                    await exchange.get_piece_range(session, piece, root, a * FRAGMENT, b * FRAGMENT)

        for name, op, requests in (("PUT", put, pieces), ("GET", get, pieces * (len(cuts) - 1))):
            node0, own0, wall0 = process_cpu(pid), time.process_time(), time.perf_counter()
            await asyncio.gather(*(op(r) for r in roots))
            node = process_cpu(pid) - node0
            own = time.process_time() - own0
            gb = SIZE * pieces / 1e9 if name == "PUT" else SIZE * pieces / 1e9 * cuts[-1] / STRIPES
            print(
                f"{name}: {pieces} pieces, {requests} requests, {gb:.2f} GB of pieces: "
                f"node {node / gb:.2f} CPU-s/GB ({node / requests * 1e3:.2f} ms per request), "
                f"sender/reader {own / gb:.2f} CPU-s/GB, {time.perf_counter() - wall0:.1f} s"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pieces", type=int, default=300)
    p.add_argument("--windows", default="0,129", help="stripe offsets of the GET requests")
    p.add_argument("--perf", action="store_true", help="perf record the node; shares by library")
    args = p.parse_args()
    cuts = [int(x) for x in args.windows.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        port = procs.free_port_block(1)
        node = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(port), tmp],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        recorder: subprocess.Popen[bytes] | None = None
        try:
            assert node.stdout is not None
            if node.stdout.readline().strip() != b"ready":
                raise RuntimeError("the node did not start")
            data = Path(tmp) / "perf.data"
            if args.perf:
                argv = ["perf", "record", "-F", "999", "-g", "-p", str(node.pid), "-o", str(data)]
                recorder = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            asyncio.run(_drive(f"http://127.0.0.1:{port}", node.pid, args.pieces, cuts))
        finally:
            if recorder is not None:
                recorder.send_signal(signal.SIGINT)
                recorder.wait()
                subprocess.run(
                    ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso"],
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
            node.terminate()
            node.wait()


if __name__ == "__main__":
    main()
