"""One big PUT and GET on the bench's skymesh, CPU per GB by role: the A/B loop for the data path.

    .venv/bin/python -m bench.probe [--mib 512] [--repeat 1] [--workdir DIR]
        [--perf ROLE | --pyspy ROLE] [--phase put|get]

Starts skymesh as ``python -m bench`` does (``skymesh up``, 12 nodes, no fsync, loopback),
PUTs a ``--mib`` object of fresh random bytes with boto3 and GETs it back,
``--repeat`` times, and prints a line per transfer: MB/s and the CPU seconds (user +
sys, ``/proc/<pid>/stat``) per GB of object of the gateway, the coordinator and all
nodes together. About 20 s for 512 MiB, so base and change can be run interleaved,
which on a shared VM is the only comparison that holds (docs/benchmarks.md, "Reading
the numbers").

``--perf ROLE`` records ``perf record -g`` of that role's processes (``nodes``: all of
them) during ``--phase``, into ``WORKDIR/perf-<phase>.data`` (read it with ``perf
report -i ... --no-children --sort sym``); ``--pyspy ROLE`` records py-spy's raw
samples of the role's first process into ``WORKDIR/pyspy-<phase>.txt`` (py-spy from
the bench's profile venv, as ``--profile`` uses). Run it with the tree to measure first
on ``PYTHONPATH`` (``PYTHONPATH=<tree>/src``). Measures, never asserts.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench import venvs
from bench.cpu import process_cpu
from bench.data import NullSink, RandomReader
from bench.systems import skymesh

ROLES = ("gateway", "coordinator", "nodes")


def _recorder(
    args: argparse.Namespace, pids: dict[str, list[int]], workdir: Path, phase: str
) -> subprocess.Popen[bytes] | None:
    """The profiler asked for, started on the role's processes; None when none is."""
    if args.perf:
        out = workdir / f"perf-{phase}.data"
        targets = ",".join(str(p) for p in pids[args.perf])
        argv = ["perf", "record", "-F", "1999", "-g", "-p", targets, "-o", str(out)]
        return subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    if args.pyspy:
        out = workdir / f"pyspy-{phase}.txt"
        argv = [
            str(venvs.ensure("profile") / "py-spy"), "record", "--nonblocking", "-r", "500", "-f", "raw",
            "-o", str(out), "-p", str(pids[args.pyspy][0]),
        ]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mib", type=int, default=512, help="object size in MiB")
    p.add_argument("--repeat", type=int, default=1, help="PUT+GET rounds on the same network")
    p.add_argument("--workdir", type=Path, help="kept: the network's home and the profiles")
    p.add_argument("--perf", choices=ROLES, help="perf record this role during --phase")
    p.add_argument("--pyspy", choices=ROLES, help="py-spy this role's first process")
    p.add_argument("--phase", choices=("put", "get"), default="put")
    args = p.parse_args()
    size = args.mib << 20
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-probe-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with skymesh.running(workdir) as store:
            pids = store.cpu_pids
            for rep in range(args.repeat):
                for phase in ("put", "get"):
                    rec = _recorder(args, pids, workdir, phase) if phase == args.phase else None
                    if rec is not None:
                        time.sleep(0.5)  # attached before the first byte
                    before = {r: sum(process_cpu(q) for q in pids[r]) for r in ROLES}
                    start = time.perf_counter()
                    if phase == "put":
                        store.put_stream(f"probe-{rep}", RandomReader(size))
                    else:
                        store.get_stream(f"probe-{rep}", NullSink())
                    seconds = time.perf_counter() - start
                    spent = {r: sum(process_cpu(q) for q in pids[r]) - before[r] for r in ROLES}
                    if rec is not None:
                        rec.send_signal(signal.SIGINT)
                        rec.wait()
                    gb = size / 1e9
                    cpu = " ".join(f"{r} {spent[r] / gb:.2f}" for r in ROLES)
                    print(f"{phase} {size / seconds / 1e6:.0f} MB/s, CPU-s/GB: {cpu}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
