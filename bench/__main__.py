"""``make bench``: skymesh, Tahoe-LAFS and moto side by side on this machine, in one run.

    python -m bench                         # issue 5's full list (long: tens of minutes)
    python -m bench --quick                 # small sizes, for development and smoke tests
    python -m bench --only skymesh,moto --workloads big,small --big-mib 256
    python -m bench --inference             # inference routing under distance (bench/inference.py)

Each system is started fresh on loopback, gets the same workloads, and is stopped
before the next starts, so they never compete with each other for the two CPUs
(they do compete with whatever else the machine runs: the load average is recorded).
Prints one table; unless ``--no-docs`` (the default with ``--quick``), rewrites the
generated part of docs/benchmarks.md and draws docs/benchmarks.png. Measures, never
asserts: a missed target is a row in the table, not an exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from bench import procs, profile, report, venvs, workloads
from bench.systems import Store
from bench.workloads import WORKLOADS, MiB, Plan, Runner

SYSTEMS = ("skymesh", "tahoe", "moto")
SKYMESH_ONLY = {"rss": "the gateway's memory is skymesh's own target", "codec": "skymesh's codec"}
S3_ONLY = {"tls": "HTTPS is measured as boto3 uses it, over S3, which Tahoe-LAFS has not"}
TLS = "tls"  # the one workload run against the system started again with HTTPS
OUT = report.ROOT / ".bench" / "out"


def _factory(name: str, tls: bool = False) -> Callable[[Path], AbstractContextManager[Store]]:
    """How to start ``name``; with ``tls``, serving S3 over HTTPS (skymesh and moto only)."""
    if name == "skymesh":
        from bench.systems import skymesh

        return partial(skymesh.running, tls=tls)
    if name == "tahoe":
        from bench.systems import tahoe

        assert not tls, "Tahoe-LAFS is not benchmarked over HTTPS"
        return tahoe.running
    from bench.systems import moto

    return partial(moto.running, tls=tls)


def _not_run(name: str) -> dict[str, str]:
    """Workloads ``name`` skips, and why."""
    skip = {} if name == "skymesh" else dict(SKYMESH_ONLY)
    return {**skip, **S3_ONLY} if name == "tahoe" else skip


def _names(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return [n for n in allowed if n in names]  # the canonical order


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test, development)")
    p.add_argument("--only", default=",".join(SYSTEMS), help="systems, comma-separated")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="workloads, comma-separated")
    p.add_argument("--big-mib", type=int, help="the big object (default 1024)")
    p.add_argument("--mid-mib", type=int, help="the middle object (default 64)")
    p.add_argument("--big-repeat", type=int)
    p.add_argument("--mid-repeat", type=int)
    p.add_argument("--small-count", type=int, help="small PUTs and GETs per run (default 1000)")
    p.add_argument("--threads", type=int, help="concurrent client threads (default 16)")
    p.add_argument("--list-keys", type=int, help="keys to fill and list (default 100000)")
    p.add_argument("--fill-threads", type=int, help="threads filling the bucket (default 32)")
    p.add_argument("--rss-mib", type=int, help="object streamed for the RSS peak (default 10240)")
    p.add_argument("--codec-segment-mib", type=int)
    p.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                   help="rewrite docs/benchmarks.md and .png (default: on, off with --quick)")  # fmt: skip
    p.add_argument("--chart", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the PNG chart (default: with --docs)")  # fmt: skip
    p.add_argument("--out", type=Path, default=OUT, help="where results JSON (and chart) go")
    p.add_argument("--workdir", type=Path, help="parent of the systems' temporary homes")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="run nothing: print (and with --docs, write) the report of a stored run")  # fmt: skip
    p.add_argument("--inference", action="store_true",
                   help="run the inference routing benchmark instead (bench/inference.py: "
                   "its own options follow, e.g. --quick)")  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="py-spy the skymesh gateway, coordinator and node-01 per workload "
                   "(summaries under --out; slows skymesh a little)")  # fmt: skip
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    mib = {k: (v * MiB if v is not None else None) for k, v in
           {"big": args.big_mib, "mid": args.mid_mib, "rss_size": args.rss_mib}.items()}  # fmt: skip
    return plan.with_overrides(
        **mib,
        big_repeat=args.big_repeat,
        mid_repeat=args.mid_repeat,
        small_count=args.small_count,
        threads=args.threads,
        list_keys=args.list_keys,
        fill_threads=args.fill_threads,
        codec_segment_mib=args.codec_segment_mib,
    )


def run_system(
    name: str,
    chosen: list[str],
    plan: Plan,
    parent: Path | None,
    into: dict[str, Any],
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Start ``name``, run its workloads, stop it; its entry lands in ``into`` at once,
    so that an interrupted run still reports what it measured.

    The ``tls`` workload runs last, on the system started again, afresh in a folder of
    its own, serving HTTPS: one listener per system, as its users would run it."""
    not_run = _not_run(name)
    todo = [w for w in chosen if w != "codec" and w not in not_run]
    entry: dict[str, Any] = {"rows": {}}
    into[name] = entry
    skipped = [w for w in chosen if w in not_run]
    if skipped:
        entry["skipped"] = skipped
        entry["skip_reason"] = "; ".join(not_run[w] for w in skipped)
    if not todo:
        return entry
    print(f"\n== {name}: {', '.join(todo)}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=parent))
    entry["load_before"] = list(os.getloadavg())
    start = time.perf_counter()
    runners: list[Runner] = []
    phases = [(False, [w for w in todo if w != TLS]), (True, [w for w in todo if w == TLS])]
    try:
        for tls, phase in phases:
            if not phase:
                continue
            began = time.perf_counter()
            home = workdir / "https" if tls else workdir
            home.mkdir(exist_ok=True)
            with _factory(name, tls)(home) as store:
                scheme = "https" if tls else "http"
                print(f"   up ({scheme}) in {time.perf_counter() - began:.1f} s", flush=True)
                pids: dict[str, int] = getattr(store, "profile_pids", {})
                around = None
                if profile_dir is not None and pids:
                    entry["profile"] = str(profile_dir)
                    around = partial(profile.profiling, pids, profile_dir)
                runners.append(Runner(store, plan, around))
                runners[-1].run(phase)
    except Exception as exc:  # one system failing must not cost the others' numbers
        traceback.print_exc()
        entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        entry["workdir"] = str(workdir)
    finally:
        entry["seconds"] = time.perf_counter() - start
        entry["load_after"] = list(os.getloadavg())
        entry["rows"] = {k: asdict(v) for r in runners for k, v in r.results.items()}
        if "error" not in entry:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            freed = keep_logs(workdir)
            print(
                f"   kept {workdir} (logs) for the failure above; "
                f"removed {freed / 2**20:,.0f} MiB of stored data",
                flush=True,
            )
    return entry


KEEP_MAX = 1 << 20  # a failed run keeps files up to this size (configs, state), and logs


def keep_logs(workdir: Path) -> int:
    """Remove what a failed run stored (pieces, shares, databases) but its logs; bytes freed.

    A failed 10 GiB workload leaves ~17 GB of pieces behind, which is what fills the disk
    for the next run; the logs and small files are what says why it failed.
    """
    freed = 0
    for path in sorted(workdir.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".log":
            continue
        size = path.stat().st_size
        if size > KEEP_MAX:
            path.unlink(missing_ok=True)
            freed += size
    return freed


def draw_chart(results: Path, png: Path, cpu_png: Path) -> bool:
    """Both charts of a run: throughput and latency in ``png``, CPU by role in ``cpu_png``."""
    try:
        python = venvs.ensure("tools") / "python"
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"no chart: {exc}", flush=True)
        return False
    chart_py = report.ROOT / "bench" / "chart.py"
    out = subprocess.run(
        [str(python), str(chart_py), str(results), str(png), str(cpu_png)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        print(f"no chart: bench/chart.py failed:\n{out.stderr[-2000:]}", flush=True)
        return False
    print(f"charts: {png}, {cpu_png}", flush=True)
    return True


def publish(run: dict[str, Any], results: Path, docs: bool, chart: bool, stamp: str) -> None:
    """Print the table; draw the chart and rewrite the docs as asked."""
    cpu = report.cpu_table(run)
    print("\n" + report.conditions_text(run) + "\n\n" + (cpu + "\n\n" if cpu else "")
          + report.render(run, None) + "\n", flush=True)  # fmt: skip
    print(f"results: {results}", flush=True)
    png = report.CHART if docs else results.parent / f"chart-{stamp}.png"
    cpu_png = report.CPU_CHART if docs else results.parent / f"chart-cpu-{stamp}.png"
    drawn = chart and draw_chart(results, png, cpu_png)
    if docs:
        report.write_doc(run, png if drawn else None, cpu_chart=cpu_png if drawn else None)
        print(f"rewrote {report.DOC}", flush=True)


def main(argv: list[str]) -> int:
    if "--inference" in argv:  # not the storage benchmark: off by default, so that stays fast
        from bench import inference

        return inference.main([a for a in argv if a != "--inference"])
    args = parse(argv)
    if args.report is not None:
        docs = bool(args.docs)
        publish(json.loads(args.report.read_text()), args.report, docs,
                args.chart if args.chart is not None else docs, time.strftime("%Y%m%d-%H%M%S"))  # fmt: skip
        return 0
    systems = _names(args.only, SYSTEMS, "system")
    chosen = _names(args.workloads, WORKLOADS, "workload")
    plan = make_plan(args)
    docs = args.docs if args.docs is not None else not args.quick
    chart = args.chart if args.chart is not None else docs
    # our endpoints are plain http, or https naming their own CA (PITFALLS.md)
    os.environ.pop("AWS_CA_BUNDLE", None)
    started = time.perf_counter()
    run: dict[str, Any] = {
        "command": "python -m bench " + shlex.join(argv),
        "conditions": report.conditions(str(args.workdir) if args.workdir else None),
        "plan": asdict(plan),
        "systems": {},
    }
    run["workloads"] = chosen
    print(f"bench: {', '.join(systems)}; {report.plan_text(plan, chosen)}", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    interrupted = False
    try:
        with procs.terminate_on_signals():
            if "codec" in chosen and "skymesh" in systems:
                print("\n== skymesh codec, one core", flush=True)
                load = list(os.getloadavg())
                codec_rows = workloads.codec(plan)
            else:
                codec_rows, load = {}, []
            for name in systems:
                profile_dir = args.out / f"profile-{stamp}" if args.profile else None
                entry = run_system(name, chosen, plan, args.workdir, run["systems"], profile_dir)
                if name == "skymesh" and codec_rows:
                    entry["rows"] = {
                        **{k: asdict(v) for k, v in codec_rows.items()},
                        **entry["rows"],
                    }
                    entry.setdefault("load_before", load)
                    entry.setdefault("load_after", list(os.getloadavg()))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: every process stopped; partial results follow", flush=True)
    run["seconds"] = time.perf_counter() - started
    run["conditions"].update(report.venv_versions())
    run["conditions"]["load_end"] = list(os.getloadavg())

    results = args.out / f"results-{stamp}.json"
    report.dump(run, results)
    if interrupted:
        publish(run, results, False, False, stamp)
        print("docs/benchmarks.md left as it was (the run was interrupted)", flush=True)
        return 130
    publish(run, results, docs, chart, stamp)
    return 1 if any("error" in s for s in run["systems"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
