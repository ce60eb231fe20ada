"""Progress of long commands (model push, drain, simulate), for people and for scripts.

``with progress("pushing tiny", total=n, unit="bytes") as bar: bar.advance(k)``
draws a ``rich`` bar (done/total, rate, time left) on stderr when stderr is a
terminal. When it is not (a pipe, a log file, CI), nothing is drawn and one
summary line is written to stderr at the end instead, so logs show how long the
work took without a bar's control codes. ``quiet`` writes nothing at all. Bars
and summaries never go to stdout: a command's result there (``--json``
included) stays what a script parses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

#: What the work counts: "bytes" (shown as kB, MB, ...) or a plural noun ("segments").
BYTES = "bytes"


class Reporter:
    """Where long work says how far it got; this base draws nothing (quiet, or not a TTY)."""

    def __init__(self, total: float | None) -> None:
        self.total = total
        self.completed = 0.0
        self.started = time.monotonic()

    def advance(self, amount: float = 1.0) -> None:
        self.update(completed=self.completed + amount)

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        """Set how much is done and, when it becomes known or changes, how much there is."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total


class _BarReporter(Reporter):
    def __init__(self, total: float | None, bar: Progress, task: TaskID) -> None:
        super().__init__(total)
        self._bar, self._task = bar, task

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        super().update(completed=completed, total=total)
        self._bar.update(self._task, completed=self.completed, total=self.total)


def _rate(per_second: float, unit: str) -> str:
    if unit == BYTES:
        return f"{decimal(int(per_second))}/s"
    return f"{per_second:,.0f} {unit}/s" if per_second >= 100 else f"{per_second:.3g} {unit}/s"


class _SpeedColumn(ProgressColumn):
    """Things per second (rich's TransferSpeedColumn speaks only bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = f"? {self.unit}/s" if speed is None else _rate(speed, self.unit)
        return Text(shown, style="progress.data.speed")


def _columns(unit: str) -> list[ProgressColumn]:
    amount: list[ProgressColumn] = (
        [DownloadColumn(), TransferSpeedColumn()]
        if unit == BYTES
        else [MofNCompleteColumn(), _SpeedColumn(unit)]
    )
    return [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        *amount,
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    ]


def summary(description: str, r: Reporter, unit: str) -> str:
    """The one line a run without a bar ends with: what, how much, how long, how fast."""
    elapsed = max(time.monotonic() - r.started, 1e-9)
    if unit == BYTES:
        amount = decimal(int(r.completed))
        if r.total is not None:
            amount += f" of {decimal(int(r.total))}"
    else:
        amount = f"{r.completed:,.0f}"
        amount += f" of {r.total:,.0f} {unit}" if r.total is not None else f" {unit}"
    return f"{description}: {amount} in {elapsed:.1f} s ({_rate(r.completed / elapsed, unit)})"


@contextmanager
def progress(
    description: str,
    *,
    total: float | None = None,
    unit: str = "items",
    quiet: bool = False,
    console: Console | None = None,
) -> Iterator[Reporter]:
    """A bar on ``console`` (default: stderr) while the block runs; see the module doc.

    When the block raises, no summary is written: the command's error says what happened.
    """
    if quiet:
        yield Reporter(total)
        return
    out = console or Console(stderr=True)
    if not out.is_terminal:
        reporter = Reporter(total)
        yield reporter
        out.print(summary(description, reporter, unit), highlight=False, soft_wrap=True)
        return
    with Progress(*_columns(unit), console=out) as bar:
        yield _BarReporter(total, bar, bar.add_task(description, total=total))
