"""docs/s3-compatibility.md must tell the truth about the gateway's handler table."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from skymesh.gateway.s3 import app
from skymesh.gateway.s3.router import Op

DOC = Path(__file__).resolve().parents[2] / "docs" / "s3-compatibility.md"
STATUSES = {"supported", "partial", "not supported"}
_ROW = re.compile(r"^\|\s*([A-Za-z0-9]+)\s*\|\s*([a-z ]+?)\s*\|(.*)\|\s*$")


def _table() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match is None or match.group(1) == "Operation":
            continue
        op, status = match.group(1), match.group(2)
        assert op not in rows, f"{op} is listed twice"
        assert status in STATUSES, f"{op}: unknown status {status!r}"
        rows[op] = status
    return rows


def test_every_operation_is_listed_once() -> None:
    rows = _table()
    assert set(rows) == {op.value for op in Op}


def test_table_agrees_with_handlers() -> None:
    rows = _table()
    handled = {op.value for op in app.HANDLERS}
    dispatched = {
        op.value
        for op in Op
        if re.search(rf"endpoint\.name == Op\.{op.name}\b", inspect.getsource(app.make_app))
    }
    answered = handled | dispatched
    assert handled <= set(rows), f"handlers for unknown ops: {handled - set(rows)}"
    for op, status in rows.items():
        if status == "supported":
            assert op in answered, f"{op} is marked supported but has no handler"
        if op in answered:
            assert status != "not supported", f"{op} has a handler but is marked not supported"
