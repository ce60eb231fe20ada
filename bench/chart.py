"""Draw a run's charts: throughput by object size and small-object latency percentiles;
and, where the run measured them, CPU seconds per GB by role (stacked, per system).

    .bench/venvs/tools/bin/python bench/chart.py RESULTS.json OUT.png [CPU_OUT.png]

Runs in the bench's own "tools" venv (matplotlib is no dependency of skymesh), so it
imports nothing but the standard library and matplotlib, and reads the JSON that
``python -m bench`` wrote.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib  # type: ignore[import-not-found]

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # type: ignore[import-not-found]

COLOURS = {"skymesh": "#1f6feb", "tahoe": "#d29922", "moto": "#8250df"}


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]]) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ys = [v if v else 0.0 for v in values]
        bars = ax.bar(xs, ys, width, label=name, color=COLOURS.get(name))
        for bar, v in zip(bars, values, strict=True):
            if v:
                ax.annotate(
                    f"{v:.3g}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


# one colour per kind of work, the same kinds report.CPU_COLUMNS lines up in its table
ROLE_COLOURS = {
    "client": "#8c959f",
    "gateway": "#1f6feb",
    "client_node": "#1f6feb",
    "server": "#1f6feb",
    "coordinator": "#bf3989",
    "introducer": "#bf3989",
    "nodes": "#2da44e",
    "storage": "#2da44e",
}
CPU_ROWS = (("put-big", "PUT"), ("get-big", "GET"), ("put-big-tls", "PUT, HTTPS"),
            ("get-big-tls", "GET, HTTPS"))  # fmt: skip


def _roles(m: dict[str, Any]) -> dict[str, float]:
    return {
        k[4:-9]: float(v)
        for k, v in m["detail"].items()
        if k.startswith("cpu_") and k.endswith("_s_per_gb")
    }


def cpu_chart(run: dict[str, Any], out: str) -> bool:
    """Stacked bars of CPU-s per GB by role, one bar per system, one panel per transfer;
    False (nothing drawn) when the run has no such numbers."""
    panels = []
    for row, title in CPU_ROWS:
        bars = {
            name: _roles(s["rows"][row])
            for name, s in run["systems"].items()
            if row in s.get("rows", {}) and _roles(s["rows"][row])
        }
        if bars:
            panels.append((title, bars))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.5, 5), squeeze=False)
    size = _size(run["plan"]["big"])
    for ax, (title, bars) in zip(axes[0], panels, strict=True):
        names = list(bars)
        for x, name in enumerate(names):
            bottom = 0.0
            roles = bars[name]
            # the client at the bottom, then the system's own processes
            for role in sorted(roles, key=lambda r: (r != "client", r)):
                v = roles[role]
                ax.bar(x, v, 0.6, bottom=bottom, color=ROLE_COLOURS.get(role, "#d29922"),
                       edgecolor="white", linewidth=0.5)  # fmt: skip
                if v >= 0.06 * max(sum(r.values()) for r in bars.values()):
                    ax.text(x, bottom + v / 2, f"{role}\n{v:.2f}", ha="center", va="center",
                            fontsize=6, color="white")  # fmt: skip
                bottom += v
            ax.annotate(f"{bottom:.1f}", (x, bottom), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_title(f"{title} {size}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("CPU seconds per GB (lower is better)")
    c = run["conditions"]
    fig.suptitle(
        f"CPU per GB by role: client grey, front end blue, coordinator pink, storage green "
        f"({c['date']}, {c['cpus']} CPUs)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return True


def main(results: str, out: str, cpu_out: str | None = None) -> None:
    with open(results) as f:
        run = json.load(f)
    plan = run["plan"]
    systems = {k: v.get("rows", {}) for k, v in run["systems"].items() if v.get("rows")}
    small = plan["small_size"]

    def mbps(rows: dict[str, Any], row: str) -> float | None:
        m = rows.get(row)
        if m is None:
            return None
        if m["unit"] == "ops/s":
            return float(m["value"]) * float(small) / 1e6
        return float(m["value"])

    size_rows = [
        (f"PUT {_size(small)}\n1 thread", "put-small-1"),
        (f"GET {_size(small)}\n1 thread", "get-small-1"),
        (f"PUT {_size(small)}\n{plan['threads']} threads", "put-small-n"),
        (f"GET {_size(small)}\n{plan['threads']} threads", "get-small-n"),
        (f"PUT {_size(plan['mid'])}", "put-mid"),
        (f"GET {_size(plan['mid'])}", "get-mid"),
        (f"PUT {_size(plan['big'])}", "put-big"),
        (f"GET {_size(plan['big'])}", "get-big"),
    ]
    size_rows = [r for r in size_rows if any(r[1] in rows for rows in systems.values())]
    lat_rows = [
        ("PUT p50\n1 thread", "put-small-1", "p50_ms"),
        ("PUT p99\n1 thread", "put-small-1", "p99_ms"),
        ("GET p50\n1 thread", "get-small-1", "p50_ms"),
        ("GET p99\n1 thread", "get-small-1", "p99_ms"),
        (f"PUT p50\n{plan['threads']} thr.", "put-small-n", "p50_ms"),
        (f"PUT p99\n{plan['threads']} thr.", "put-small-n", "p99_ms"),
        (f"GET p50\n{plan['threads']} thr.", "get-small-n", "p50_ms"),
        (f"GET p99\n{plan['threads']} thr.", "get-small-n", "p99_ms"),
    ]
    lat_rows = [r for r in lat_rows if any(r[1] in rows for rows in systems.values())]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8.5))
    _bars(
        top,
        [label for label, _ in size_rows],
        {name: [mbps(rows, row) for _, row in size_rows] for name, rows in systems.items()},
    )
    top.set_ylabel("MB/s (log)")
    top.set_title("Throughput by object size (higher is better)")
    _bars(
        bottom,
        [label for label, _, _ in lat_rows],
        {
            name: [rows[row]["detail"][k] if row in rows else None for _, row, k in lat_rows]
            for name, rows in systems.items()
        },
    )
    bottom.set_ylabel("ms (log)")
    bottom.set_title(f"Latency of {_size(small)} requests (lower is better)")
    c = run["conditions"]
    fig.suptitle(
        f"skymesh vs Tahoe-LAFS vs moto, {c['date']}: {c['cpus']} CPUs, "
        f"load {c['load_start'][0]:.1f} at start",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    if cpu_out is not None:
        cpu_chart(run, cpu_out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
