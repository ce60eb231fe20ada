"""The node's piece store alone: CPU per 1.41 MB piece written, no HTTP, no orders.

    PYTHONPATH=src .venv/bin/python bench/bench_store.py [--pieces 200] [--no-fsync]

Writes ``--pieces`` pieces of boto3's 8 MiB part's size (129 stripes of 10,923
bytes, as ``bench_node.py``), four at a time, into a fresh
:class:`~skymesh.node.diskstore.DiskPieceStore` under ``/tmp`` and prints this
process's CPU (user and system) and wall time per piece: the store's hashing,
file creation, writes, syncs and renames. Measures, never asserts; compare
interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from skymesh.node.diskstore import DiskPieceStore

SIZE = 10_923 * 129
CONCURRENCY = 4


async def _run(pieces: int, fsync: bool) -> None:
    data = memoryview(os.urandom(SIZE))

    async def body() -> AsyncIterator[memoryview]:
        yield data

    with tempfile.TemporaryDirectory(prefix="bench-store-") as d:
        store = DiskPieceStore(Path(d), 1 << 40, 65536, fsync=fsync)
        try:
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(0, pieces, CONCURRENCY):
                await asyncio.gather(
                    *(
                        store.write(secrets.token_hex(32), body(), SIZE, SIZE, "0" * 32)
                        for _ in range(CONCURRENCY)
                    )
                )
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        finally:
            store.close()
    n = store.piece_count
    user, sys_ = (r1.ru_utime - r0.ru_utime) / n * 1e3, (r1.ru_stime - r0.ru_stime) / n * 1e3
    print(
        f"fsync={int(fsync)} {n} pieces: CPU {user + sys_:.2f} ms a piece (user {user:.2f},"
        f" system {sys_:.2f}), wall {(t1 - t0) / n * 1e3:.2f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pieces", type=int, default=200)
    p.add_argument("--no-fsync", action="store_true")
    args = p.parse_args()
    asyncio.run(_run(args.pieces, not args.no_fsync))


if __name__ == "__main__":
    main()
