"""``python -m bench.inference``: inference routing under simulated distance, in one table.

    python -m bench.inference            # the full run; rewrites its section of docs/benchmarks.md
    python -m bench.inference --quick    # few requests, docs left alone (smoke test)
    python -m bench.inference --report .bench/out/inference-*.json --docs   # a stored run
    make bench BENCH_ARGS=--inference    # the same through `python -m bench`

Two real `skymesh up --distance` networks (a gateway per region, delay proxies with
the default RTT matrix of skymesh.network.rtt between each gateway and each compute
node), run one after the other:

- **near**: one compute node in every region. Measures each node's embeddings per
  second (single texts and batches of 16, one caller, pinned to the node with the
  ``skymesh.regions`` extension), the gateway's own time per request (a request
  through the gateway minus the same request sent straight to the node, through the
  same delay proxy, with an order fetched beforehand), and the latency seen by a
  caller in each region, who talks to its own region's gateway.
- **central**: compute only in ``--central`` (us-east): the same callers' latency
  when every request must cross to one region, as with a centralised cloud.

Callers send one request at a time (latency, not load), of one short text. The
numbers include loopback hops and two CPUs shared by every process, so read the
differences between rows more than the absolute values. Measures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import urllib3

from bench import procs, report
from bench.systems import skymesh
from bench.workloads import _pct
from skymesh.compute.catalog import MINILM
from skymesh.config import Credential, load_credentials
from skymesh.network.rtt import RttMatrix
from skymesh.network.up import DEFAULT_REGIONS
from skymesh.wire.inference import ComputeNodeList, InferenceOrderRequest, InferenceOrders
from skymesh.wire.signing import ORDER_HEADER, encode_header

BEGIN = "<!-- inference:begin -->"
END = "<!-- inference:end -->"
TEXT = "a short sentence to embed, about fifteen tokens long in all."
BATCH = 16
NODE_MS = "X-Skymesh-Compute-Ms"


class Net:
    """One running `skymesh up --distance`, as the benchmark reaches it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.gateways: dict[str, str] = json.loads((home / "run" / "gateways.json").read_text())
        self.cred: Credential = load_credentials(home / "gateway" / "credentials.toml")[0]
        self.inference_key: str = json.loads((home / "state.json").read_text())["inference_key"]
        coord = tomllib.loads((home / "coordinator" / "config.toml").read_text())["coordinator"]
        self.coordinator = f"http://{coord['host']}:{coord['port']}"
        self.http = urllib3.PoolManager(maxsize=8)

    def embed(self, region: str, inputs: list[str], pin: str = "") -> tuple[float, str]:
        """One request to ``region``'s gateway: its seconds and the region that served it."""
        body: dict[str, Any] = {"model": MINILM.name, "input": inputs, "encoding_format": "base64"}
        if pin:
            body["skymesh"] = {"regions": [pin]}
        started = time.perf_counter()
        resp = self.http.request(
            "POST",
            f"{self.gateways[region]}/v1/embeddings",
            body=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.inference_key}",
                "Content-Type": "application/json",
            },
        )
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"{region}'s gateway answered {resp.status}: {resp.data[:300]!r}")
        return elapsed, str(resp.headers.get("X-Skymesh-Region", "?"))

    def _coordinator(self, method: str, path: str, body: object = None) -> bytes:
        resp = self.http.request(
            method,
            f"{self.coordinator}{path}",
            body=msgspec.json.encode(body) if body is not None else None,
            headers={"Authorization": f"Bearer {self.cred.api_key}"},
        )
        if resp.status != 200:
            raise RuntimeError(f"coordinator {path}: {resp.status} {resp.data[:300]!r}")
        return bytes(resp.data)

    def compute_nodes(self) -> ComputeNodeList:
        return msgspec.json.decode(
            self._coordinator("GET", "/v1/compute/nodes"), type=ComputeNodeList
        )

    def embed_direct(self, node_id: str, url: str) -> tuple[float, float, float]:
        """The same request straight to a node at ``url``, with an order asked for first:
        its seconds, the node's own ms, and the seconds the order took."""
        req = InferenceOrderRequest(model=MINILM.name, node_ids=[node_id], max_tokens=2048)
        asked = time.perf_counter()
        raw = self._coordinator("POST", "/v1/compute/orders", req)
        order = msgspec.json.decode(raw, type=InferenceOrders).orders[0]
        order_s = time.perf_counter() - asked
        body = msgspec.json.encode({"model": MINILM.name, "input": [TEXT]})
        started = time.perf_counter()
        resp = self.http.request(
            "POST",
            f"{url}/v1/infer/embeddings",
            body=body,
            headers={ORDER_HEADER: encode_header(order), "Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"node {node_id} answered {resp.status}: {resp.data[:300]!r}")
        return elapsed, float(resp.headers.get(NODE_MS, "nan")), order_s


def _until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _quietly(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (RuntimeError, OSError, urllib3.exceptions.HTTPError):
        return False


def _ready(net: Net, compute_regions: list[str]) -> None:
    """Every compute node advertised, its model loaded, and each gateway's RTT probes back."""
    _until(
        "compute nodes advertised",
        lambda: len(net.compute_nodes().nodes) == len(compute_regions),
    )
    for region in net.gateways:  # loads the model on every node, starts each gateway's probes
        for pin in compute_regions:
            _until(f"{pin} serving", partial(_serves, net, region, pin))
    time.sleep(2.0)  # probes through the farthest proxies take 2 RTT: well under this


def _serves(net: Net, region: str, pin: str) -> bool:
    """A request to ``region``'s gateway, pinned to ``pin``, was served there."""
    return net.embed(region, [TEXT], pin)[1] == pin


def _latency(net: Net, region: str, n: int) -> dict[str, Any]:
    seconds, served = [], []
    for _ in range(n):
        t, where = net.embed(region, [TEXT])
        seconds.append(t)
        served.append(where)
    top = max(set(served), key=served.count)
    return {
        "p50_ms": _pct(seconds, 50) * 1e3,
        "p99_ms": _pct(seconds, 99) * 1e3,
        "served_by": top,
        "served_share": served.count(top) / len(served),
        "requests": n,
    }


def _throughput(net: Net, region: str, n: int) -> dict[str, float]:
    """Embeddings per second of ``region``'s node, from its own region's gateway."""
    single = sum(net.embed(region, [TEXT], region)[0] for _ in range(n))
    batches = max(2, n // 4)
    batched = sum(net.embed(region, [TEXT] * BATCH, region)[0] for _ in range(batches))
    return {"single_per_s": n / single, "batch_per_s": batches * BATCH / batched}


def _overhead(net: Net, n: int) -> dict[str, float]:
    """The first region's gateway against its own region's node, through the same proxy."""
    region = next(iter(net.gateways))
    node = next(c for c in net.compute_nodes().nodes if c.region == region)
    gw_conf = tomllib.loads((net.home / "gateway" / "config.toml").read_text())["gateway"]
    via = gw_conf["node_routes"][node.address]
    direct, node_ms, orders, through = [], [], [], []
    for _ in range(n):  # interleaved, so load changes hit both alike
        t, ms, order_s = net.embed_direct(node.node_id, via)
        direct.append(t)
        node_ms.append(ms)
        orders.append(order_s)
        through.append(net.embed(region, [TEXT], region)[0])
    d, g = statistics.median(direct), statistics.median(through)
    return {
        "gateway_p50_ms": g * 1e3,
        "direct_p50_ms": d * 1e3,
        "overhead_p50_ms": (g - d) * 1e3,
        "node_compute_p50_ms": statistics.median(node_ms),
        "order_p50_ms": statistics.median(orders) * 1e3,
        "same_region_rtt_ms": RttMatrix.default().ms(region, region),
    }


def run_network(
    name: str, compute_regions: list[str], args: argparse.Namespace, out: dict[str, Any]
) -> None:
    """Start one network, measure, stop it; its entry lands in ``out`` as soon as it exists."""
    entry: dict[str, Any] = {"compute_regions": compute_regions, "load_before": os.getloadavg()}
    out[name] = entry
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-inference-{name}-", dir=args.workdir))
    up_args = ["--distance", "--compute-regions", ",".join(compute_regions)]
    started = time.perf_counter()
    print(f"\n== {name}: compute in {', '.join(compute_regions)}", flush=True)
    try:
        with skymesh.running(workdir, args.nodes, up_args, spare_ports=len(DEFAULT_REGIONS) - 1):
            net = Net(workdir / "skymesh")
            print(f"   up in {time.perf_counter() - started:.1f} s", flush=True)
            _ready(net, compute_regions)
            # latency first: batches raise a node's advertised mean service time, which
            # routing counts, so after them small requests may rightly go elsewhere
            entry["latency"] = {r: _latency(net, r, args.requests) for r in net.gateways}
            if name == "near":
                entry["overhead"] = _overhead(net, args.requests)
                entry["throughput"] = {r: _throughput(net, r, args.requests) for r in net.gateways}
    except Exception as exc:  # one network failing must not cost the other's numbers
        entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        print(f"   failed: {entry['error']}; kept {workdir}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    entry["seconds"] = time.perf_counter() - started
    entry["load_after"] = os.getloadavg()


# ---------------------------------------------------------------- report


def table(run: dict[str, Any]) -> str:
    """One Markdown table: a column per caller region."""
    nets: dict[str, Any] = run["networks"]
    regions = list(DEFAULT_REGIONS)
    lines = [
        "| measure | " + " | ".join(regions) + " |",
        "|---|" + "---|" * len(regions),
    ]

    def row(label: str, fmt: Callable[[str], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(r) for r in regions) + " |")

    near, central = nets.get("near", {}), nets.get("central", {})
    thr = near.get("throughput", {})
    if thr:
        row("embeddings/s of the region's node, single texts",
            lambda r: f"{thr[r]['single_per_s']:.1f}" if r in thr else "–")  # fmt: skip
        row(f"embeddings/s of the region's node, batches of {BATCH}",
            lambda r: f"{thr[r]['batch_per_s']:.1f}" if r in thr else "–")  # fmt: skip
    for label, entry in (
        ("caller latency, compute in every region (near)", near),
        (f"caller latency, compute only in {run['central']}", central),
    ):
        lat = entry.get("latency", {})
        if lat:
            row(f"{label}: p50 / p99 ms (served by)", partial(_region_lat_cell, lat))
    return "\n".join(lines)


def _region_lat_cell(lat: dict[str, Any], region: str) -> str:
    return _lat_cell(lat.get(region))


def _lat_cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return "–"
    share = "" if m["served_share"] == 1 else f" {m['served_share']:.0%}"
    return f"{m['p50_ms']:.0f} / {m['p99_ms']:.0f} ({m['served_by']}{share})"


def notes(run: dict[str, Any]) -> list[str]:
    out = []
    o = run["networks"].get("near", {}).get("overhead")
    if o:
        out.append(
            f"- **Gateway routing overhead**: {o['overhead_p50_ms']:.1f} ms per request at p50"
            f" (through the gateway {o['gateway_p50_ms']:.1f} ms, straight to the same node"
            f" through the same {o['same_region_rtt_ms']:g} ms proxy {o['direct_p50_ms']:.1f}"
            f" ms; the node's own compute {o['node_compute_p50_ms']:.1f} ms). It is the"
            " gateway's whole share: auth, the cached node list, ranking, the coordinator"
            " round trip for a signed order (alone, from the benchmark:"
            f" {o.get('order_p50_ms', float('nan')):.1f} ms), re-encoding the answer, and one"
            " more loopback hop."
        )
    out.append(
        "- Callers are measured before the throughput runs: a node advertises its mean"
        " service time per request, which routing adds to the RTT, so right after batches"
        f" of {BATCH} a node looks several times slower to a one-text request and routing"
        " sends those across regions (an earlier run that measured in the other order saw"
        " us-east's callers served from eu-central at 128 ms p50)."
    )
    m = RttMatrix.default()
    pairs = ", ".join(f"{a}-{b} {ms:g}" for (a, b), ms in sorted(m.pairs.items()))
    out.append(f"- **Simulated RTTs (ms)**: {pairs}; within a region {m.same_region_ms:g}.")
    for name, entry in run["networks"].items():
        if entry.get("error"):
            out.append(f"- {name} stopped early: {entry['error']}")
    return out


def render(run: dict[str, Any]) -> str:
    c = run["conditions"]
    loads = "; ".join(
        f"{name}: {report._load(e['load_before'])} before, {report._load(e['load_after'])}"
        f" after ({e['seconds']:.0f} s)"
        for name, e in run["networks"].items()
    )
    return "\n".join(
        [
            f"## Inference routing under simulated distance ({c['date']})",
            "",
            "Generated by `python -m bench.inference`; edit the text above the markers, not"
            " between them.",
            "",
            f"- **Machine:** {c['cpu']}, {c['cpus']} CPUs (`nproc` {c['nproc']}), shared by"
            f" every process of both networks; skymesh {c['skymesh']}, Python {c['python']}.",
            f"- **Setup:** `skymesh up --distance --nodes {run['nodes']}`; one compute node per"
            f" region (near) or only in {run['central']} (central); {run['requests']} sequential"
            " requests of one short text per caller region; each caller uses its region's"
            " gateway.",
            f"- **Command:** `{run['command']}`",
            f"- **Load average** (1/5/15 min): at start {report._load(c['load_start'])}; {loads}.",
            "",
            table(run),
            "",
            *notes(run),
        ]
    )


def write_doc(run: dict[str, Any], doc: Path = report.DOC) -> None:
    block = "\n".join([BEGIN, "", render(run), "", END])
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    doc.write_text(report.replace_section(text, BEGIN, END, block))


# ---------------------------------------------------------------- main


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--quick", action="store_true", help="few requests; docs left alone")
    p.add_argument("--requests", type=int, help="requests per caller region and measure (40)")
    p.add_argument("--nodes", type=int, default=8, help="nodes per network (default 8)")
    p.add_argument("--central", default="us-east", help="the one region of the central run")
    p.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                   help="rewrite the inference section of docs/benchmarks.md (default: unless --quick)")  # fmt: skip
    p.add_argument("--out", type=Path, default=report.ROOT / ".bench" / "out")
    p.add_argument("--workdir", type=Path, help="parent of the networks' temporary homes")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="run nothing: print (and with --docs, write) the report of a stored run")  # fmt: skip
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 5 if args.quick else 40
    if args.central not in DEFAULT_REGIONS:
        p.error(f"--central must be one of {', '.join(DEFAULT_REGIONS)}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.report is not None:
        stored = json.loads(args.report.read_text())
        print(render(stored), flush=True)
        if args.docs:
            write_doc(stored)
        return 0
    os.environ.pop("AWS_CA_BUNDLE", None)  # our endpoints are plain http (PITFALLS.md)
    run: dict[str, Any] = {
        "command": " ".join(["python -m bench.inference", *argv]),
        "conditions": report.conditions(),
        "nodes": args.nodes,
        "requests": args.requests,
        "central": args.central,
        "networks": {},
    }
    with procs.terminate_on_signals():
        run_network("near", list(DEFAULT_REGIONS), args, run["networks"])
        run_network("central", [args.central], args, run["networks"])
    text = render(run)
    print("\n" + text + "\n", flush=True)
    results = args.out / f"inference-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.dump(run, results)
    print(f"results: {results}", flush=True)
    if args.docs if args.docs is not None else not args.quick:
        write_doc(run)
        print(f"rewrote the inference section of {report.DOC}", flush=True)
    return 1 if any("error" in e for e in run["networks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
