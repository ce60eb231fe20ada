"""The workloads of issue 5, run the same way against every `Store`.

Each workload measures and records; none asserts a target (report.py compares).
They do check what they got back (sizes, small bodies, key counts), so a system
that answers fast but wrong cannot win.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.cpu import cpu_per_gb, cpu_per_op
from bench.data import NullSink, RandomReader, unique_bytes
from bench.systems import Store

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# in the order of the table; "codec" needs no system, "rss" only runs on skymesh, and
# "tls" (big over HTTPS) on the S3 systems, each started again with HTTPS, after the rest
WORKLOADS = ("big", "tls", "mid", "ttfb", "small", "concurrent", "list", "rss", "codec")


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; the defaults are issue 5's list."""

    big: int = 1 * GiB
    mid: int = 64 * MiB
    big_repeat: int = 1
    mid_repeat: int = 3
    ttfb_repeat: int = 5
    small_size: int = 4 * KiB
    small_count: int = 1000
    threads: int = 16
    list_keys: int = 100_000
    fill_threads: int = 32
    rss_size: int = 10 * GiB
    codec_segment_mib: int = 64
    codec_repeat: int = 3

    @classmethod
    def quick(cls) -> Plan:
        """Small enough for a smoke test or a development loop (seconds, not minutes)."""
        return cls(
            big=16 * MiB,
            mid=4 * MiB,
            big_repeat=1,
            mid_repeat=1,
            ttfb_repeat=2,
            small_count=40,
            threads=4,
            list_keys=300,
            fill_threads=8,
            rss_size=32 * MiB,
            codec_segment_mib=4,
            codec_repeat=1,
        )

    def with_overrides(self, **changes: Any) -> Plan:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Measurement:
    """One cell of the table: a value in a unit, and what else is worth showing."""

    value: float
    unit: str
    detail: dict[str, float] = field(default_factory=dict)
    note: str = ""


Results = dict[str, Measurement]  # row id -> measurement, for one system


def human_size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def _throughput(size: int, seconds: list[float]) -> Measurement:
    mid = statistics.median(seconds)
    return Measurement(size / mid / 1e6, "MB/s", {"seconds": mid, "runs": len(seconds)})


def _pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _latencies(count: int, wall: float, lat: list[float]) -> Measurement:
    return Measurement(
        count / wall,
        "ops/s",
        {"p50_ms": _pct(lat, 50) * 1e3, "p99_ms": _pct(lat, 99) * 1e3, "seconds": wall},
    )


def _log(system: str, row: str, m: Measurement) -> None:
    extra = ", ".join(f"{k} {v:.4g}" for k, v in m.detail.items())
    print(f"   {system:8} {row:16} {m.value:12.4g} {m.unit:6} {extra}", flush=True)


class Runner:
    """Runs the selected workloads against one store, collecting `Results`."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        around: Callable[[str], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.around = around  # wraps each workload (the profiler, with --profile)
        self.results: Results = {}
        self._big_key: str | None = None

    def _around(self, name: str) -> AbstractContextManager[None]:
        return self.around(name) if self.around else nullcontext()

    def record(self, row: str, m: Measurement) -> None:
        self.results[row] = m
        _log(self.store.name, row, m)

    def _put_get(self, tag: str, size: int, repeat: int) -> None:
        puts: list[float] = []
        gets: list[float] = []
        roles: dict[str, list[int]] = getattr(self.store, "cpu_pids", {})
        put_cpu: dict[str, float] = {}  # of the first run: where the CPU goes
        get_cpu: dict[str, float] = {}
        for i in range(repeat):
            key = f"{tag}-{i}"
            with self._around(f"put-{tag}"), cpu_per_gb(roles, size, put_cpu if i == 0 else {}):
                start = time.perf_counter()
                self.store.put_stream(key, RandomReader(size))
                puts.append(time.perf_counter() - start)
            sink = NullSink()
            with self._around(f"get-{tag}"), cpu_per_gb(roles, size, get_cpu if i == 0 else {}):
                start = time.perf_counter()
                self.store.get_stream(key, sink)
                gets.append(time.perf_counter() - start)
            if sink.written != size:
                raise RuntimeError(f"{self.store.name}: GET {key} gave {sink.written} of {size} B")
            if tag == "big":
                self._big_key = key
        put, get = _throughput(size, puts), _throughput(size, gets)
        put.detail.update(put_cpu)
        get.detail.update(get_cpu)
        self.record(f"put-{tag}", put)
        self.record(f"get-{tag}", get)

    def big(self) -> None:
        self._put_get("big", self.plan.big, self.plan.big_repeat)

    def tls(self) -> None:
        """``big`` again, over HTTPS (the store must be the system started with TLS).

        boto3 sends unsigned aws-chunked bodies with a CRC32 trailer over HTTPS instead
        of SHA-256-signing them, and pays for AES-GCM instead: the CPU columns show the trade.
        """
        self._put_get("big-tls", self.plan.big, 1)

    def mid(self) -> None:
        self._put_get("mid", self.plan.mid, self.plan.mid_repeat)

    def ttfb(self) -> None:
        if self._big_key is None:
            self._big_key = "ttfb"
            self.store.put_stream(self._big_key, RandomReader(self.plan.big))
        times = [self.store.first_byte(self._big_key) for _ in range(self.plan.ttfb_repeat)]
        med = statistics.median(times)
        self.record("ttfb", Measurement(med * 1e3, "ms", {"min_ms": min(times) * 1e3}))

    def _ops(
        self, keys: list[str], op: Callable[[str], None], threads: int
    ) -> tuple[float, list[float]]:
        lat: list[float] = []
        lock = threading.Lock()

        def run(part: list[str]) -> None:
            mine: list[float] = []
            for key in part:
                start = time.perf_counter()
                op(key)
                mine.append(time.perf_counter() - start)
            with lock:
                lat.extend(mine)

        parts = [keys[i::threads] for i in range(threads)]
        start = time.perf_counter()
        if threads == 1:
            run(keys)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, parts))
        return time.perf_counter() - start, lat

    def _small(self, tag: str, threads: int) -> None:
        n = self.plan.small_count
        keys = [f"{tag}/{i:06d}" for i in range(n)]
        bodies = {k: unique_bytes(self.plan.small_size) for k in keys}

        def get(key: str) -> None:
            if self.store.get_small(key) != bodies[key]:
                raise RuntimeError(f"{self.store.name}: GET {key} returned other bytes")

        roles: dict[str, list[int]] = getattr(self.store, "cpu_pids", {})
        put_cpu: dict[str, float] = {}  # CPU ms per request, per role: where small requests go
        get_cpu: dict[str, float] = {}
        with cpu_per_op(roles, n, put_cpu):
            wall, lat = self._ops(keys, lambda k: self.store.put_small(k, bodies[k]), threads)
        suffix = "1" if threads == 1 else "n"  # row ids stay put whatever --threads says
        put = _latencies(n, wall, lat)
        put.detail.update(put_cpu)
        self.record(f"put-small-{suffix}", put)
        with cpu_per_op(roles, n, get_cpu):
            wall, lat = self._ops(keys, get, threads)
        got = _latencies(n, wall, lat)
        got.detail.update(get_cpu)
        self.record(f"get-small-{suffix}", got)

    def small(self) -> None:
        self._small("small", 1)

    def concurrent(self) -> None:
        self._small("conc", self.plan.threads)

    def listing(self) -> None:
        n = self.plan.list_keys
        with self._around("fill"):  # profiled apart: filling is PUTs, not listing
            start = time.perf_counter()
            self.store.fill("list/", n, self.plan.fill_threads)
            fill = time.perf_counter() - start
        with self._around("list"):
            start = time.perf_counter()
            got = self.store.list_count("list/")
            seconds = time.perf_counter() - start
        if got != n:
            raise RuntimeError(f"{self.store.name}: listing found {got} of {n} keys")
        raw: Callable[[str], int] | None = getattr(self.store, "list_count_raw", None)
        if raw is not None:  # S3 only: the server's rate, without boto3's parsing
            start = time.perf_counter()
            got_raw = raw("list/")
            raw_s = time.perf_counter() - start
            if got_raw != n:
                raise RuntimeError(f"{self.store.name}: raw listing found {got_raw} of {n} keys")
            self.record("list-raw", Measurement(n / raw_s, "keys/s", {"seconds": raw_s, "keys": n}))
        self.record("fill", Measurement(n / fill, "keys/s", {"seconds": fill, "keys": n}))
        self.record("list", Measurement(n / seconds, "keys/s", {"seconds": seconds, "keys": n}))

    def rss(self) -> None:
        pid = self.store.gateway_pid()
        if pid is None:
            return
        size = self.plan.rss_size
        # each phase its own peak: the GET's starts from what the PUT left resident
        with RssSampler(pid) as put_peak:
            start = time.perf_counter()
            self.store.put_stream("rss", RandomReader(size))
            put_s = time.perf_counter() - start
        sink = NullSink()
        with RssSampler(pid) as get_peak:
            start = time.perf_counter()
            self.store.get_stream("rss", sink)
            get_s = time.perf_counter() - start
        if sink.written != size:
            raise RuntimeError(f"{self.store.name}: GET rss gave {sink.written} of {size} B")
        self.record(
            "rss",
            Measurement(
                max(put_peak.peak_mib(), get_peak.peak_mib()),
                "MiB",
                {
                    "before_mib": put_peak.before_kib / 1024,
                    "sampled_max_mib": max(put_peak.max_rss_kib, get_peak.max_rss_kib) / 1024,
                    "put_peak_mib": put_peak.peak_mib(),
                    "get_peak_mib": get_peak.peak_mib(),
                    "get_before_mib": get_peak.before_kib / 1024,
                    "put_MBps": size / put_s / 1e6,
                    "get_MBps": size / get_s / 1e6,
                },
            ),
        )

    def run(self, workloads: list[str]) -> Results:
        for name in workloads:
            if name in ("list", "big", "mid", "tls"):
                getattr(self, "listing" if name == "list" else name)()  # wraps its phases itself
            elif name != "codec":
                with self._around(name):
                    getattr(self, name)()
        return self.results


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


class RssSampler:
    """Peak resident memory of one process over a block, from the kernel's own high-water mark.

    ``clear_refs`` with 5 resets VmHWM, so the peak is this block's and not start-up's;
    where that is not allowed, the peak of VmRSS sampled every 50 ms stands in.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_kib = 0
        self.max_rss_kib = 0
        self.hwm_kib: int | None = None
        self._reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.max_rss_kib = max(self.max_rss_kib, _status_kib(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return

    def __enter__(self) -> RssSampler:
        self.before_kib = _status_kib(self.pid, "VmRSS")
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._reset = True
        except OSError:
            self._reset = False
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._reset:
            self.hwm_kib = _status_kib(self.pid, "VmHWM")

    def peak_mib(self) -> float:
        return max(self.hwm_kib or 0, self.max_rss_kib) / 1024


def codec(plan: Plan) -> Results:
    """bench/bench_codec.py in its own process, pinned to one core as it pins itself."""
    out = subprocess.run(
        [
            sys.executable, "-m", "bench.bench_codec", "--json",
            "--segment-mib", str(plan.codec_segment_mib), "--repeat", str(plan.codec_repeat),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    rows: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    results: Results = {
        "codec-encode": Measurement(rows["encode"], "GB/s", {}, "encrypt + RS encode + BLAKE3"),
        "codec-decode": Measurement(rows["decode_2_missing"], "GB/s", {}, "2 data pieces missing"),
    }
    for row, m in results.items():
        _log("skymesh", row, m)
    return results
