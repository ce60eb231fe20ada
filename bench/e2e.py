"""End to end through S3: boto3 against a 12-node in-process network on loopback.

    .venv/bin/python -m bench.e2e [--big-mib 256] [--small-count 300]

Prints one table (throughput and latency per workload) with the conditions.
Measures, never asserts. Everything shares this machine's cores: the client,
the gateway, the coordinator and all 12 nodes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread


def _row(name: str, value: str, detail: str = "") -> str:
    return f"| {name} | {value} | {detail} |"


def run(big_mib: int, small_count: int) -> list[str]:
    os.environ.pop("AWS_CA_BUNDLE", None)
    rows = ["| workload | result | detail |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        planet = PlanetThread(Planet(Path(tmp), PlanetConfig(fault_hooks=False))).start()
        try:
            s3 = planet.boto3()
            s3.create_bucket(Bucket="bench")
            data = os.urandom(big_mib * 1024 * 1024)
            for _ in range(2):  # the second run is the one we keep (warm connections)
                t = time.perf_counter()
                s3.put_object(Bucket="bench", Key="big", Body=data)
                put_s = time.perf_counter() - t
                t = time.perf_counter()
                body = s3.get_object(Bucket="bench", Key="big")["Body"]
                first = body.read(1)
                ttfb = time.perf_counter() - t
                rest = body.read()
                get_s = time.perf_counter() - t
                assert len(first) + len(rest) == len(data)
            mb = len(data) / 1e6
            rows.append(
                _row(f"PUT {big_mib} MiB (put_object)", f"{mb / put_s:.0f} MB/s", f"{put_s:.2f} s")
            )
            rows.append(_row(f"GET {big_mib} MiB", f"{mb / get_s:.0f} MB/s", f"{get_s:.2f} s"))
            rows.append(_row(f"time to first byte, {big_mib} MiB GET", f"{ttfb * 1000:.1f} ms", ""))
            small = os.urandom(4096)
            puts: list[float] = []
            gets: list[float] = []
            for i in range(small_count):
                t = time.perf_counter()
                s3.put_object(Bucket="bench", Key=f"small/{i:06d}", Body=small)
                puts.append(time.perf_counter() - t)
            for i in range(small_count):
                t = time.perf_counter()
                s3.get_object(Bucket="bench", Key=f"small/{i:06d}")["Body"].read()
                gets.append(time.perf_counter() - t)
            for name, lat in (("PUT 4 KiB, one thread", puts), ("GET 4 KiB, one thread", gets)):
                q = statistics.quantiles(lat, n=100)
                rows.append(
                    _row(
                        name,
                        f"{len(lat) / sum(lat):.0f} ops/s",
                        f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms",
                    )
                )
            t = time.perf_counter()
            n = 0
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket="bench", Prefix="small/"
            ):
                n += page.get("KeyCount", 0)
            list_s = time.perf_counter() - t
            rows.append(
                _row(f"ListObjectsV2 of {n} keys", f"{n / list_s:.0f} keys/s", f"{list_s:.2f} s")
            )
        finally:
            planet.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small-count", type=int, default=300)
    args = parser.parse_args()
    rows = run(args.big_mib, args.small_count)
    print(
        f"skymesh end to end, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, 12 nodes in 3 regions, in one process"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
