"""The benchmark harness (bench/, ``make bench``) still runs, and its report is sound.

Fast tests cover the parts with logic (unique bodies, the sink, ratios and verdicts,
the docs rewrite keeping the hand-written part). One slow test runs the real thing,
``python -m bench --quick --only skymesh`` with tiny sizes against a real
``skymesh up``: no Tahoe or moto is installed for it, and it checks that every
workload produced a number and that no process outlived the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench import report
from bench.data import NullSink, RandomReader
from bench.workloads import WORKLOADS, Plan

ROOT = Path(__file__).resolve().parents[2]


def test_random_reader_gives_exact_unique_bodies() -> None:
    a = RandomReader(3 * 1024 * 1024 + 5)
    b = RandomReader(3 * 1024 * 1024 + 5)
    body_a = b"".join(iter(lambda: a.read(700_001), b""))
    body_b = b.read()
    assert len(body_a) == len(body_b) == 3 * 1024 * 1024 + 5
    assert body_a != body_b  # Tahoe's convergent encryption must never see a repeat
    # every 1 MiB chunk differs too (the chunk index is stamped in)
    chunks = {body_a[i : i + 4096] for i in range(0, len(body_a) - 4096, 1024 * 1024)}
    assert len(chunks) == 3


def test_null_sink_counts_ranged_writes() -> None:
    sink = NullSink()
    sink.seek(8)
    sink.write(b"x" * 8)
    sink.seek(0)
    sink.write(memoryview(b"y" * 8))
    assert sink.written == 16 and sink.end == 16


def _run(sky: dict[str, Any], moto: dict[str, Any] | None = None) -> dict[str, Any]:
    systems: dict[str, Any] = {"skymesh": {"rows": sky}}
    if moto is not None:
        systems["moto"] = {"rows": moto}
    return {"plan": vars(Plan()), "systems": systems}


def _m(value: float, unit: str, **detail: float) -> dict[str, Any]:
    return {"value": value, "unit": unit, "detail": detail, "note": ""}


def test_ratios_favour_skymesh_above_one_and_verdicts_follow_targets() -> None:
    sky = {
        "put-big": _m(300, "MB/s"),
        "ttfb": _m(20, "ms"),
        "put-small-1": _m(500, "ops/s", p50_ms=2.0, p99_ms=4.0),
    }
    moto = {
        "put-big": _m(150, "MB/s"),
        "ttfb": _m(40, "ms"),
        "put-small-1": _m(300, "ops/s", p50_ms=3, p99_ms=5),
    }
    run = _run(sky, moto)
    assert report.ratio("put-big", sky["put-big"], moto["put-big"]) == 2.0
    assert report.ratio("ttfb", sky["ttfb"], moto["ttfb"]) == 2.0  # lower is better
    systems = run["systems"]
    assert report.verdict("put-big", systems) == "yes (partial)"  # no tahoe in this run
    assert report.verdict("ttfb", systems) == "yes"
    assert report.verdict("put-small-1", systems) == "**no**"  # 1.67x moto, not 2x
    text = report.table(run)
    assert "| PUT 1 GiB | 300.0 MB/s | 150.0 MB/s | 2.00x |" in text


def test_cpu_table_lines_up_each_systems_roles(tmp_path: Path) -> None:
    cpu = {"cpu_client_s_per_gb": 3.0}
    sky = {
        "put-big": _m(100, "MB/s", seconds=1.0, **cpu, cpu_gateway_s_per_gb=6.5,
                      cpu_coordinator_s_per_gb=1.25, cpu_nodes_s_per_gb=5.0),
        "ttfb": _m(20, "ms"),  # no CPU details: not in the table
    }  # fmt: skip
    tahoe = {
        "put-big": _m(15, "MB/s", **cpu, cpu_client_node_s_per_gb=20.0,
                      cpu_introducer_s_per_gb=0.0, cpu_storage_s_per_gb=8.0),
    }  # fmt: skip
    moto = {"put-big": _m(120, "MB/s", **cpu, cpu_server_s_per_gb=4.0)}
    run = _run(sky, moto)
    run["systems"]["tahoe"] = {"rows": tahoe}
    text = report.cpu_table(run)
    lines = text.splitlines()
    assert len(lines) == 2 + 3  # header, rule, one row per system
    # client | front end | coordinator | storage nodes | servers | all | MB/s
    assert (
        "| PUT 1 GiB | skymesh | 3.00 | 6.50 | 1.25 | 5.00 | 12.75 | **15.75** | 100.0 |" in lines
    )
    assert "| PUT 1 GiB | tahoe | 3.00 | 20.00 | 0.00 | 8.00 | 28.00 | **31.00** | 15.0 |" in lines
    assert "| PUT 1 GiB | moto | 3.00 | 4.00 | – | – | 4.00 | **7.00** | 120.0 |" in lines
    assert report.cpu_table(_run({"ttfb": _m(20, "ms")})) == ""  # no big transfer: no table
    doc = tmp_path / "benchmarks.md"
    report.write_doc({**run, **_conditions()}, None, doc, cpu_chart=tmp_path / "cpu.png")
    text = doc.read_text()  # the generated section leads with the CPU table and its chart
    assert text.index(lines[2]) < text.index("![CPU seconds per GB") < text.index("| workload |")


def _conditions() -> dict[str, Any]:
    return {
        "conditions": {  # what report.conditions() reads off the machine, made up
            "date": "2026-01-01 00:00 UTC",
            "cpu": "test CPU",
            "cpus": 2,
            "nproc": 2,
            "memory_gib": 1.0,
            "kernel": "6",
            "python": "3.11",
            "skymesh": "0.1.0",
            "boto3": "1",
            "tahoe-lafs": "",
            "moto": "",
            "load_start": [0.0, 0.0, 0.0],
        },
        "seconds": 60.0,
    }


def test_write_doc_keeps_the_hand_written_part(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nHand-written intro.\n")
    run = {**_run({"list": _m(25_000, "keys/s", seconds=4.0)}), **_conditions()}
    report.write_doc(run, None, doc)
    report.write_doc(run, None, doc)  # a second run replaces, never appends
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written intro.\n")
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert "25,000 keys/s" in text
    assert "CPU seconds per GB" not in text  # no big transfer in this run: no CPU section


def test_conditions_say_what_moves_the_nodes_figures(tmp_path: Path) -> None:
    found = report.storage_conditions(str(tmp_path))
    mounts = Path("/proc/mounts").read_text().split()
    assert found["filesystem"].split(" ")[0] in mounts  # the type of the mount holding it
    lines = report.storage_text({"page_reporting": 2000, "filesystem": "ext4 on / (rw)"})
    assert "pages free for 2000 ms go back to the host" in lines[0]
    assert lines[1] == "- **Disk:** the systems' homes on ext4 on / (rw)."
    assert report.storage_text({}) == []  # runs recorded before these were taken


def test_a_failed_run_keeps_its_logs_not_its_data(tmp_path: Path) -> None:
    from bench.__main__ import KEEP_MAX, keep_logs

    piece = tmp_path / "skymesh" / "nodes" / "node-01" / "pieces" / "ab" / "ab12"
    piece.parent.mkdir(parents=True)
    piece.write_bytes(b"x" * (KEEP_MAX + 1))
    log = tmp_path / "skymesh" / "logs" / "gateway.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"y" * (KEEP_MAX + 1))  # a long log is still a log
    (tmp_path / "skymesh" / "state.json").write_text("{}")
    assert keep_logs(tmp_path) == KEEP_MAX + 1
    assert not piece.exists() and log.exists() and (tmp_path / "skymesh" / "state.json").exists()


def _processes_mentioning(needle: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text:
            found.append(text)
    return found


@pytest.mark.slow
@pytest.mark.timeout(450)  # ~25 s alone; minutes on a machine loaded by other runs
def test_quick_bench_against_skymesh_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    argv = [
        sys.executable, "-m", "bench", "--quick", "--only", "skymesh", "--no-docs",
        "--out", str(out), "--workdir", str(work), "--big-mib", "8", "--mid-mib", "2",
        "--small-count", "20", "--threads", "4", "--list-keys", "60", "--rss-mib", "8",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [results] = out.glob("results-*.json")
    run = json.loads(results.read_text())
    sky = run["systems"]["skymesh"]
    assert "error" not in sky
    rows = set(sky["rows"])
    expected = {"put-big", "get-big", "put-big-tls", "get-big-tls", "put-mid", "get-mid", "ttfb", "put-small-1", "get-small-1",
                "put-small-n", "get-small-n", "fill", "list", "list-raw", "rss", "codec-encode", "codec-decode"}  # fmt: skip
    assert rows == expected, f"workloads {WORKLOADS} gave rows {sorted(rows)}"
    assert all(m["value"] > 0 for m in sky["rows"].values())
    assert "| PUT 8 MiB |" in proc.stdout  # the table was printed
    assert not _processes_mentioning(str(work)), "a process of the run outlived it"
    assert not list(work.iterdir()), "the system's temporary home was not removed"
