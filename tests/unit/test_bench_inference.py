"""The inference benchmark's report: its table, and its section of docs/benchmarks.md.

The storage benchmark and the inference benchmark each rewrite their own section of
one file; either must keep the other's (and the hand-written text) as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench import inference, report

from skymesh.compute.catalog import MINILM
from skymesh.network.rtt import RttMatrix
from skymesh.network.up import DEFAULT_REGIONS

ROOT = Path(__file__).resolve().parents[2]


def _run() -> dict[str, Any]:
    lat = {"p50_ms": 21.0, "p99_ms": 30.0, "served_by": "us-east", "served_share": 1.0}
    return {
        "command": "python -m bench.inference",
        "conditions": {
            "date": "2026-11-26 17:00 UTC",
            "cpu": "cpu",
            "cpus": 2,
            "nproc": 2,
            "skymesh": "0.1.0",
            "python": "3.11",
            "load_start": [1.0, 1.0, 1.0],
        },
        "nodes": 8,
        "requests": 3,
        "central": "us-east",
        "networks": {
            "near": {
                "load_before": [1, 1, 1],
                "load_after": [2, 2, 2],
                "seconds": 30,
                "throughput": {"eu-west": {"single_per_s": 40.0, "batch_per_s": 150.0}},
                "overhead": {
                    "gateway_p50_ms": 20.0,
                    "direct_p50_ms": 17.5,
                    "overhead_p50_ms": 2.5,
                    "node_compute_p50_ms": 12.0,
                    "same_region_rtt_ms": 1.5,
                },
                "latency": {"us-east": lat},
            },
            "central": {
                "load_before": [1, 1, 1],
                "load_after": [2, 2, 2],
                "seconds": 20,
                "latency": {"ap-south": {**lat, "p50_ms": 216.4, "served_share": 0.9}},
                "error": "RuntimeError: boom",
            },
        },
    }


def test_the_table_has_a_column_per_region_and_marks_what_is_missing() -> None:
    text = inference.render(_run())
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0] == "| measure | eu-west | us-east | ap-south | eu-central |"
    single = next(line for line in lines if "single texts" in line)
    assert single.split(" | ")[1:3] == ["40.0", "–"]
    central = next(line for line in lines if "only in us-east" in line)
    assert "216 / 30 (us-east 90%)" in central
    assert "2.5 ms per request at p50" in text
    assert "central stopped early: RuntimeError: boom" in text


def test_each_benchmark_keeps_the_others_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nHand-written.\n")
    inference.write_doc(_run(), doc)
    storage = f"{report.BEGIN}\nstorage numbers\n{report.END}"
    doc.write_text(report.replace_section(doc.read_text(), report.BEGIN, report.END, storage))
    first = doc.read_text()
    assert "Hand-written." in first and "storage numbers" in first
    assert "(2026-11-26 17:00 UTC)" in first

    again = _run()
    again["conditions"]["date"] = "2026-11-27 09:00 UTC"
    inference.write_doc(again, doc)
    text = doc.read_text()
    assert text.count(inference.BEGIN) == 1 and text.count(inference.END) == 1
    assert "2026-11-27 09:00 UTC" in text and "2026-11-26 17:00 UTC" not in text
    assert "Hand-written." in text and "storage numbers" in text

    storage2 = f"{report.BEGIN}\nnew storage numbers\n{report.END}"
    text = report.replace_section(text, report.BEGIN, report.END, storage2)
    assert "new storage numbers" in text and "2026-11-27 09:00 UTC" in text
    assert "\nstorage numbers" not in text


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~40 s alone; minutes on a machine loaded by other runs
def test_quick_run_against_two_real_networks(tmp_path: Path) -> None:
    """`python -m bench.inference --quick`: both networks, near callers served near."""
    pytest.importorskip("onnxruntime")
    if MINILM.packaged_files() is None:
        pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'")
    # four nodes a network (the bench's default is 8): the first node of each region
    # computes either way, so routing sees the same compute nodes; the rest only store
    # the packaged models, and each of them costs the two cores seconds to start
    argv = [sys.executable, "-m", "bench.inference", "--quick", "--no-docs", "--nodes", "4",
            "--out", str(tmp_path), "--workdir", str(tmp_path)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=570)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    run = json.loads(next(tmp_path.glob("inference-*.json")).read_text())
    near, central = run["networks"]["near"], run["networks"]["central"]
    assert set(near["latency"]) == set(central["latency"]) == set(DEFAULT_REGIONS)
    m = RttMatrix.default()
    for region in DEFAULT_REGIONS:
        # near: in the region, or 22 ms off in the other EU region when the nodes'
        # service times (which routing adds to the RTT) swing more than that under load
        assert m.ms(region, near["latency"][region]["served_by"]) <= m.ms("eu-west", "eu-central")
        assert central["latency"][region]["served_by"] == "us-east"
        assert near["throughput"][region]["batch_per_s"] > 0
    # a caller far from the only compute waits at least the round trip to it
    assert central["latency"]["ap-south"]["p50_ms"] >= m.ms("ap-south", "us-east")
    assert "| measure | eu-west |" in proc.stdout
    assert not list(tmp_path.glob("bench-inference-*"))  # homes removed after a clean run
