"""Progress of long commands: a bar on a terminal, one summary line elsewhere, nothing when quiet."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.compute.store import push_model
from skymesh.progress import progress
from skymesh.wire.durability import DrainStatus


def _run_bar(console: Console, *, quiet: bool = False, unit: str = "bytes") -> None:
    with progress("pushing tiny", total=3_000_000, unit=unit, quiet=quiet, console=console) as bar:
        for _ in range(3):
            time.sleep(0.01)  # rich needs samples apart in time to tell a rate
            bar.advance(1_000_000)


def test_quiet_writes_nothing() -> None:
    out = io.StringIO()
    _run_bar(Console(file=out, force_terminal=True), quiet=True)
    assert out.getvalue() == ""


def test_without_a_terminal_only_a_summary_line() -> None:
    out = io.StringIO()
    _run_bar(Console(file=out, force_terminal=False, width=200))
    text = out.getvalue()
    assert text.count("\n") == 1 and "\x1b" not in text  # no bar, no control codes
    assert text.startswith("pushing tiny: 3.0 MB of 3.0 MB in ")
    assert text.rstrip().endswith("MB/s)")


def test_summary_counts_things_other_than_bytes() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with progress("simulating", total=10, unit="segments", console=console) as bar:
        bar.update(completed=10)
    assert out.getvalue().startswith("simulating: 10 of 10 segments in ")
    assert "segments/s)" in out.getvalue()


def test_no_summary_when_the_work_fails() -> None:
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        progress("pushing", total=1, console=Console(file=out, force_terminal=False)),
    ):
        raise RuntimeError("boom")
    assert out.getvalue() == ""


def test_on_a_terminal_a_bar_with_rate_and_time_left() -> None:
    out = io.StringIO()
    _run_bar(Console(file=out, force_terminal=True, width=200))
    text = out.getvalue()
    assert "pushing tiny" in text and "━" in text
    assert "3.0/3.0 MB" in text and "MB/s" in text  # DownloadColumn, TransferSpeedColumn
    assert "0:00:00" in text  # time left / elapsed


def test_simulate_json_and_quiet_keep_stdout_parseable() -> None:
    args = ["simulate", "--scheme", "8/10/12/12", "--segments", "300", "--years", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["params"]["segments"] == 300 and report["monte_carlo"]["repairs"] > 0
    assert result.stderr.startswith("simulating: 300 of 300 segments in ")  # stderr: not a TTY
    quiet = CliRunner().invoke(app, [*args, "--json", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout) == report  # seeded: the same run
    env = CliRunner().invoke(app, args, env={"SKYMESH_QUIET": "1"})
    assert env.exit_code == 0 and env.stderr == "" and "Monte-Carlo" in env.stdout


def test_drain_wait_counts_moved_pieces_from_the_polls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    polls = [DrainStatus("n1", 1.0, 4), DrainStatus("n1", 1.0, 1), DrainStatus("n1", 1.0, 0, 9.0)]

    async def fake(
        config: Any, *, wait: bool, poll: float, progress: Callable[[DrainStatus], None]
    ) -> DrainStatus:
        for s in polls if wait else polls[:1]:
            progress(s)
        return s

    monkeypatch.setattr("skymesh.node.drain.request_drain", fake)
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[node]\ndata_dir = "{tmp_path}"\n')
    waited = CliRunner().invoke(app, ["node", "drain", "--config", str(cfg), "--wait"])
    assert waited.exit_code == 0, waited.output
    assert waited.stdout == "node n1 is drained: it holds no pieces; you may stop it\n"
    assert waited.stderr.startswith("moving pieces off: 4 of 4 pieces in ")
    quiet = CliRunner().invoke(app, ["node", "drain", "-c", str(cfg), "--wait", "-q"])
    assert quiet.stdout == waited.stdout and quiet.stderr == ""
    once = CliRunner().invoke(app, ["node", "drain", "--config", str(cfg)])
    assert (once.stdout, once.stderr) == ("node n1 is draining: 4 pieces left to move\n", "")


class _Store:
    """What push_model needs of a Client: a bucket, and objects read to their end."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def create_bucket(self, name: str) -> None:
        pass

    async def put_object(
        self, bucket: str, key: str, source: AsyncIterator[bytes], *, size: int
    ) -> None:
        self.objects[key] = b"".join([c async for c in source])


def test_push_model_tells_the_bytes_it_sends(tmp_path: Path) -> None:
    files = []
    for name, size in (("a.bin", 3 * 1024 * 1024 + 5), ("b.bin", 10)):
        files.append(tmp_path / name)
        files[-1].write_bytes(b"x" * size)
    sent: list[int] = []
    store = _Store()
    push = push_model(store, "m", files, kind="chat", context_length=8, sent=sent.append)  # type: ignore[arg-type]
    asyncio.run(push)
    assert sum(sent) == 3 * 1024 * 1024 + 15 and len(sent) == 5  # 1 MiB chunks
    assert len(store.objects["m/a.bin"]) == 3 * 1024 * 1024 + 5
