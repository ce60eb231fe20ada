"""One table of every system and workload beside issue 5's targets, and docs/benchmarks.md.

The table is Markdown so that the terminal and the docs show the same thing. Ratios
read "how many times better skymesh is": skymesh/other for rates, other/skymesh for
latencies and memory, so > 1 always favours skymesh. A target counts as met only on
the parts that could be checked in this run; a missing system makes it "partial".
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import venvs
from bench.workloads import Measurement, Plan, human_size

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"
CPU_CHART = ROOT / "docs" / "benchmarks-cpu.png"
BEGIN = (
    "<!-- bench:generated:begin (python -m bench rewrites everything down to the end marker) -->"
)
END = "<!-- bench:generated:end -->"


@dataclass(frozen=True)
class Target:
    text: str
    limit: float | None = None  # on `on` (the value, or one of its details)
    on: str = "value"
    lower_is_better: bool = False
    vs: dict[str, float] = field(default_factory=dict)  # system -> least ratio


LOWER_IS_BETTER = {"ttfb", "rss"}
# (system, row) whose numbers measure something else than skymesh's row: no ratio
NOT_COMPARABLE = {("tahoe", "fill")}

TARGETS: dict[str, Target] = {
    "put-big": Target(
        ">= 250 MB/s; >= 10x tahoe, >= 1.5x moto", 250, vs={"tahoe": 10, "moto": 1.5}
    ),
    "get-big": Target(">= 500 MB/s; >= 10x tahoe, >= 8x moto", 500, vs={"tahoe": 10, "moto": 8}),
    "put-small-1": Target("p50 <= 3 ms; >= 2x moto", 3, "p50_ms", True, {"moto": 2}),
    "get-small-1": Target("p50 <= 2 ms; >= 2x moto", 2, "p50_ms", True, {"moto": 2}),
    "list": Target(">= 20,000 keys/s", 20_000),
    "list-raw": Target(">= 20,000 keys/s", 20_000),
    "ttfb": Target("<= 50 ms", 50, lower_is_better=True),
    "rss": Target("<= 300 MiB", 300, lower_is_better=True),
    "codec-encode": Target(">= 1 GB/s", 1.0),
    "codec-decode": Target(">= 1.5 GB/s", 1.5),
}

NOTES: dict[tuple[str, str], str] = {
    ("tahoe", "fill"): "one `POST /uri?t=mkdir-immutable` with every child (an empty LIT file): "
    "Tahoe has no bucket, and adding entries one by one rewrites a mutable directory each time",
    ("tahoe", "list"): "`GET /uri/<dircap>?t=json` of that immutable directory, parsed",
    ("skymesh", "put-big-tls"): "the HTTPS rows come from a start of their own, after the "
    "http workloads: `skymesh up --tls` (a fresh home), and `moto_server --ssl-cert` with a "
    "certificate of the same kind of local CA; over HTTPS boto3 sends unsigned aws-chunked "
    "bodies with a CRC32 trailer instead of SHA-256-signing them",
    ("skymesh", "list-raw"): "the listing through SigV4-presigned urllib3 GETs, counting keys "
    "from the XML, to separate the server's rate from boto3's response parsing",
}


def row_labels(plan: Plan) -> dict[str, str]:
    big, mid, small = human_size(plan.big), human_size(plan.mid), human_size(plan.small_size)
    return {
        "put-big": f"PUT {big}",
        "get-big": f"GET {big}",
        "put-big-tls": f"PUT {big}, HTTPS",
        "get-big-tls": f"GET {big}, HTTPS",
        "put-mid": f"PUT {mid}",
        "get-mid": f"GET {mid}",
        "ttfb": f"time to first byte, {big} GET",
        "put-small-1": f"PUT {small} x {plan.small_count}, 1 thread",
        "get-small-1": f"GET {small} x {plan.small_count}, 1 thread",
        "put-small-n": f"PUT {small} x {plan.small_count}, {plan.threads} threads",
        "get-small-n": f"GET {small} x {plan.small_count}, {plan.threads} threads",
        "fill": f"fill {plan.list_keys:,} keys ({plan.fill_threads} threads)",
        "list": f"ListObjectsV2, all pages of {plan.list_keys:,} keys",
        "list-raw": "ListObjectsV2 as raw HTTP, same keys (no boto3 parsing)",
        "rss": f"gateway peak RSS, {human_size(plan.rss_size)} in and out",
        "codec-encode": "codec encode, 1 core (encrypt + RS + BLAKE3)",
        "codec-decode": "codec decode, 1 core, 2 pieces missing",
    }


def cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return "–"
    v, unit, d = m["value"], m["unit"], m["detail"]
    if unit == "ops/s":
        return f"{v:,.0f} ops/s (p50 {d['p50_ms']:.1f}, p99 {d['p99_ms']:.1f} ms)"
    if unit == "keys/s" and "seconds" in d:
        return f"{v:,.0f} keys/s ({d['seconds']:.1f} s)"
    if unit == "MB/s":
        return f"{v:,.1f} MB/s"
    if unit == "GB/s":
        return f"{v:.2f} GB/s"
    if unit == "MiB":
        return f"{v:,.0f} MiB"
    return f"{v:,.1f} {unit}"


def ratio(row: str, sky: dict[str, Any] | None, other: dict[str, Any] | None) -> float | None:
    if sky is None or other is None or not sky["value"] or not other["value"]:
        return None
    a, b = float(sky["value"]), float(other["value"])
    return b / a if row in LOWER_IS_BETTER else a / b


def verdict(row: str, systems: dict[str, dict[str, Any]]) -> str:
    target = TARGETS.get(row)
    sky = systems.get("skymesh", {}).get("rows", {}).get(row)
    if target is None or sky is None:
        return ""
    ok = True
    partial = False
    if target.limit is not None:
        got = sky["value"] if target.on == "value" else sky["detail"][target.on]
        ok &= got <= target.limit if target.lower_is_better else got >= target.limit
    for other, least in target.vs.items():
        r = ratio(row, sky, systems.get(other, {}).get("rows", {}).get(row))
        if r is None:
            partial = True
        else:
            ok &= r >= least
    word = "yes" if ok else "**no**"
    return f"{word} (partial)" if partial and target.vs else word


def table(run: dict[str, Any]) -> str:
    plan = Plan(**run["plan"])
    systems: dict[str, dict[str, Any]] = run["systems"]
    names = list(systems)
    others = [n for n in names if n != "skymesh"]
    labels = row_labels(plan)
    head = ["workload", *names, *(f"skymesh vs {o}" for o in others), "target (issue 5)", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, label in labels.items():
        cells = [systems[n].get("rows", {}).get(row) for n in names]
        if all(c is None for c in cells):
            continue
        sky = systems.get("skymesh", {}).get("rows", {}).get(row)
        ratios = []
        for o in others:
            r = ratio(row, sky, systems[o].get("rows", {}).get(row))
            if (o, row) in NOT_COMPARABLE:
                ratios.append("n/a")
            else:
                ratios.append("–" if r is None else f"{r:.2f}x")
        target = TARGETS.get(row)
        line = [
            label,
            *(cell(c) for c in cells),
            *ratios,
            target.text if target else "",
            verdict(row, systems),
        ]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- CPU per GB, by role

# Where each system's CPU goes on the big transfers, in columns that line up across
# systems: whatever a system calls its processes (bench/systems/, ``cpu_pids``),
# each role lands in the column of the work it does for the same bytes.
CPU_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("client", ("client",)),
    ("front end", ("gateway", "client_node", "server")),
    ("coordinator", ("coordinator", "introducer")),
    ("storage nodes", ("nodes", "storage")),
)
CPU_LEGEND = (
    "The client is boto3 (for Tahoe-LAFS, urllib3 against its web API), in the "
    "benchmark's own process; the front end is skymesh's gateway, Tahoe's client node "
    "(which encrypts, erasure-codes and spreads, as skymesh's gateway does) and moto's "
    "server (its only process: it neither encrypts, codes nor spreads); the coordinator "
    "column holds Tahoe's introducer; storage nodes are skymesh's 12 and Tahoe's 10. "
    '"servers" is every column but the client\'s.'
)
CPU_ROWS = ("put-big", "get-big", "put-big-tls", "get-big-tls")
CPU_TARGETS = (
    "Issue 17's targets (CPU-s per GB, skymesh): PUT gateway <= 5 and nodes <= 2; "
    "GET gateway <= 1.2 and nodes <= 0.8."
)


def cpu_roles(m: dict[str, Any]) -> dict[str, float]:
    """A row's ``cpu_<role>_s_per_gb`` details, by role."""
    return {
        k[4:-9]: float(v)
        for k, v in m["detail"].items()
        if k.startswith("cpu_") and k.endswith("_s_per_gb")
    }


def cpu_table(run: dict[str, Any]) -> str:
    """CPU seconds per GB of object, per role, for every system's big PUTs and GETs;
    "" when the run measured none (no big workload)."""
    labels = row_labels(Plan(**run["plan"]))
    head = ["transfer", "system", *(c for c, _ in CPU_COLUMNS), "servers", "all", "MB/s"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in CPU_ROWS:
        for name, system in run["systems"].items():
            m = system.get("rows", {}).get(row)
            roles = cpu_roles(m) if m else {}
            if not roles:
                continue
            cells = []
            for _, members in CPU_COLUMNS:
                got = [roles[r] for r in members if r in roles]
                cells.append(f"{sum(got):.2f}" if got else "–")
            servers = sum(v for r, v in roles.items() if r != "client")
            total = sum(roles.values())
            line = [labels[row], name, *cells, f"{servers:.2f}", f"**{total:.2f}**",
                    f"{m['value']:,.1f}"]  # fmt: skip
            lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def cpu_section(run: dict[str, Any], chart: Path | None) -> list[str]:
    """The lead of the generated section: the CPU table, how to read it, its chart."""
    text = cpu_table(run)
    if not text:
        return []
    parts = [
        "### CPU seconds per GB, by role",
        "",
        "User + system CPU seconds each process spent on the big PUT and GET, per GB "
        "of object (`/proc/<pid>/stat` before and after, `bench/cpu.py`; the client is "
        "the benchmark process itself). On a server energy follows CPU time, so this is "
        "the figure that holds on any machine.",
        "",
        text,
        "",
        CPU_LEGEND,
        "",
        CPU_TARGETS,
        "",
    ]
    if chart is not None:
        parts += [f"![CPU seconds per GB by role and system]({chart.name})", ""]
    return parts


def footnotes(run: dict[str, Any]) -> list[str]:
    notes = []
    for name, system in run["systems"].items():
        for row in system.get("rows", {}):
            if (name, row) in NOTES:
                notes.append(f"- {name}, {row}: {NOTES[(name, row)]}.")
        if system.get("error"):
            notes.append(f"- {name} stopped early: {system['error']}")
        if system.get("skipped"):
            notes.append(
                f"- {name}: not run for {', '.join(system['skipped'])} ({system['skip_reason']})."
            )
    return notes


# ---------------------------------------------------------------- conditions


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return ""


PAGE_REPORTING = "/sys/module/page_reporting/parameters"


def storage_conditions(workdir: str | None = None) -> dict[str, Any]:
    """What of the VM and the disk moves the nodes' CPU per GB from run to run.

    Free page reporting (a VM's virtio-balloon hands pages free for a while back to
    its host) makes memory written for the first time since cost a host fault:
    page-cache copies into such pages took ~1.8 CPU-s/GB here instead of ~0.3. The
    filesystem's type and options say what creating a piece's files costs.
    """
    out: dict[str, Any] = {"page_reporting": None, "filesystem": ""}
    if Path(PAGE_REPORTING).is_dir():
        delay = _read(f"{PAGE_REPORTING}/min_free_ms").strip()
        out["page_reporting"] = int(delay) if delay.isdigit() else -1
    target = os.path.realpath(workdir or tempfile.gettempdir()).rstrip("/") + "/"
    mount = best = ""
    for line in _read("/proc/mounts").splitlines():
        fields = line.split()
        point = fields[1].rstrip("/") + "/" if len(fields) >= 4 else ""
        if point and target.startswith(point) and len(point) >= len(mount):
            mount = point
            best = f"{fields[2]} on {fields[1]} ({fields[3]})"
    out["filesystem"] = best
    return out


def conditions(workdir: str | None = None) -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+) kB", _read("/proc/meminfo"))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cpus": os.cpu_count(),
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "skymesh": _version("skymesh") + (f" ({commit})" if commit else ""),
        "boto3": _version("boto3"),
        **venv_versions(),
        "load_start": list(os.getloadavg()),
        **storage_conditions(workdir),
    }


def venv_versions() -> dict[str, str]:
    """Tahoe-LAFS's and moto's versions in their venvs ("" where not installed yet).

    Asked again once the systems ran: a first run (or a changed requirement)
    installs a venv only when its system starts, after the conditions were taken.
    """
    return {
        "tahoe-lafs": venvs.package_version("tahoe", "tahoe-lafs"),
        "moto": venvs.package_version("moto", "moto"),
    }


def plan_text(plan: Plan, chosen: list[str] | None = None) -> str:
    """The sizes of the workloads that run (all of them when ``chosen`` is None)."""
    p = plan
    parts = {
        "big": f"big object {human_size(p.big)} (x{p.big_repeat})",
        "tls": f"{human_size(p.big)} over HTTPS (x1)",
        "mid": f"mid {human_size(p.mid)} (x{p.mid_repeat}, median)",
        "ttfb": f"TTFB median of {p.ttfb_repeat}",
        "small": f"{p.small_count} x {human_size(p.small_size)} on 1 thread",
        "concurrent": f"{p.small_count} x {human_size(p.small_size)} on {p.threads} threads",
        "list": f"{p.list_keys:,} keys listed (filled by {p.fill_threads} threads)",
        "rss": f"RSS over {human_size(p.rss_size)}",
        "codec": f"codec segment {p.codec_segment_mib} MiB best of {p.codec_repeat}",
    }
    return ", ".join(text for name, text in parts.items() if chosen is None or name in chosen)


def conditions_text(run: dict[str, Any]) -> str:
    c = run["conditions"]
    lines = [
        f"- **When:** {c['date']}; the run took {run.get('seconds', 0) / 60:.1f} min.",
        f"- **Machine:** {c['cpu']}, {c['cpus']} CPUs (`nproc` {c['nproc']}), "
        f"{c['memory_gib']} GiB memory, Linux {c['kernel']}. Every system, its nodes and the "
        "boto3/HTTP client share these CPUs.",
        f"- **Versions:** skymesh {c['skymesh']}, tahoe-lafs {c['tahoe-lafs'] or '–'}, "
        f"moto {c['moto'] or '–'}, boto3 {c['boto3']}, Python {c['python']}.",
        *storage_text(c),
        f"- **Sizes:** {plan_text(Plan(**run['plan']), run.get('workloads'))}.",
        f"- **Command:** `{run.get('command', 'python -m bench')}`",
    ]
    loads = [f"at start {_load(c['load_start'])}"]
    for name, s in run["systems"].items():
        if "load_before" in s:
            loads.append(
                f"{name}: {_load(s['load_before'])} before, {_load(s['load_after'])} after "
                f"({s.get('seconds', 0):.0f} s)"
            )
    lines.append("- **Load average** (1/5/15 min): " + "; ".join(loads) + ".")
    return "\n".join(lines)


def storage_text(c: dict[str, Any]) -> list[str]:
    """The conditions of :func:`storage_conditions`, where the run recorded them."""
    lines = []
    delay = c.get("page_reporting")
    if delay is not None:
        lines.append(
            "- **Memory:** free page reporting on (pages free for "
            + (f"{delay} ms" if delay > 0 else "a moment")
            + " go back to the host; writing such a page again costs a host fault, so "
            'page-cache writes into fresh memory cost ~6x: see "This VM\'s memory and disk" below).'
        )
    if c.get("filesystem"):
        lines.append(f"- **Disk:** the systems' homes on {c['filesystem']}.")
    return lines


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def details_text(run: dict[str, Any]) -> str:
    """Everything the table rounds away, for whoever tunes the data path."""
    lines = ["| system | row | value | details |", "|---|---|---|---|"]
    for name, s in run["systems"].items():
        for row, m in s.get("rows", {}).items():
            d = ", ".join(f"{k} {v:.4g}" for k, v in m["detail"].items())
            lines.append(f"| {name} | {row} | {m['value']:.4g} {m['unit']} | {d} |")
    return "\n".join(lines)


def render(run: dict[str, Any], chart: Path | None) -> str:
    parts = [
        table(run),
        "",
        "Ratios: how many times better skymesh is (rates skymesh/other; latency and "
        "memory other/skymesh). Targets are issue 5's, set for 1 GiB objects, 1,000 "
        "small objects and 100,000 keys: at other sizes they are a guide only.",
    ]
    notes = footnotes(run)
    if notes:
        parts += ["", *notes]
    return "\n".join(parts)


def write_doc(
    run: dict[str, Any], chart: Path | None, doc: Path = DOC, cpu_chart: Path | None = None
) -> None:
    """Replace the generated section of ``doc`` (appended on first use); keep the rest as is.

    It leads with the CPU per GB by role (:func:`cpu_section`), then every workload."""
    cpu = cpu_section(run, cpu_chart)
    generated = [
        BEGIN,
        "",
        f"## Latest run ({run['conditions']['date']})",
        "",
        "Generated by `python -m bench`; edit the text above the markers, not below.",
        "",
        conditions_text(run),
        "",
        *cpu,
        *(["### Every workload", ""] if cpu else []),
        render(run, chart),
        "",
    ]
    if chart is not None:
        generated += [f"![throughput and latency by system]({chart.name})", ""]
    generated += [
        "<details><summary>All measured numbers</summary>",
        "",
        details_text(run),
        "",
        "</details>",
        "",
        END,
    ]
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    doc.write_text(replace_section(text, BEGIN, END, "\n".join(generated)))


def replace_section(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the part from ``begin`` to ``end`` replaced by ``block`` (appended
    when absent); everything outside, other generated sections included (the inference
    benchmark's, bench/inference.py), is kept as it is."""
    if begin in text and end in text.split(begin, 1)[1]:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def dump(run: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1, default=_default))


def _default(o: object) -> Any:
    if isinstance(o, Measurement):
        return asdict(o)
    raise TypeError(type(o))
