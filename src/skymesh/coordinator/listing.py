"""S3 listing as a walk over sorted keys: pure logic, no I/O.

:class:`ListWalk` asks for pages of keys (:class:`KeyPage`: a half-open key range
and a row limit) and is fed the rows; the caller runs each page as one indexed
range scan. Keys under ``prefix`` that contain ``delimiter`` after it roll up into
one common prefix, and the walk then seeks straight past everything under that
prefix, so a bucket costs a query per common prefix, not per key.

Semantics (S3's): an entry or a common prefix is listed when it is greater than
``start_after``; entries and prefixes together, in key order, count towards
``limit``. When truncated, ``next_start_after`` is the last item listed, and a
common prefix given back as ``start_after`` skips every key under it.

Order is that of code points, which is the byte order of UTF-8 (SQLite's BINARY
collation, PostgreSQL's "C").
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

MAX_LIMIT = 1000
MAX_PAGE = 1000
MIN_DELIMITED_PAGE = 16  # rows read after a seek, before we know how far keys run without one
_MAX_CODE_POINT = 0x10FFFF


class HasKey(Protocol):
    @property
    def key(self) -> str: ...


R = TypeVar("R", bound=HasKey)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= _MAX_CODE_POINT:
            if 0xD800 <= code <= 0xDFFF:  # surrogates never occur in keys
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


@dataclass(frozen=True)
class KeyPage:
    """Keys in [start, end) (or (start, end) when not ``inclusive``), at most ``limit``, ascending."""

    start: str
    inclusive: bool
    end: str | None
    limit: int


@dataclass
class ListWalk(Generic[R]):
    prefix: str
    delimiter: str
    start_after: str
    limit: int
    entries: list[R] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_start_after: str = ""
    done: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        self._end = prefix_end(self.prefix) if self.prefix else None
        if self.prefix > self.start_after:
            self._start, self._inclusive = self.prefix, True
        else:
            self._start, self._inclusive = self.start_after, False
        self._listed = 0
        self._page = MIN_DELIMITED_PAGE if self.delimiter else MAX_PAGE
        self._asked = 0

    def next_page(self) -> KeyPage | None:
        """The next range to read, or None when the walk is over."""
        if self.done:
            return None
        # One row past the limit tells whether the listing is truncated.
        self._asked = min(self.limit - self._listed + 1, self._page, MAX_PAGE)
        return KeyPage(self._start, self._inclusive, self._end, self._asked)

    def feed(self, rows: Sequence[R]) -> None:
        """The rows of the page :meth:`next_page` asked for, in key order."""
        for row in rows:
            key = row.key
            if self._listed == self.limit:
                self.truncated = True
                self.done = True
                return
            if self.delimiter:
                cut = key.find(self.delimiter, len(self.prefix))
                if cut >= 0:
                    common = key[: cut + len(self.delimiter)]
                    if common > self.start_after:
                        self.prefixes.append(common)
                        self._item(common)
                    after = prefix_end(common)
                    if after is None:
                        self.done = True
                    else:
                        self._start, self._inclusive = after, True
                        self._page = MIN_DELIMITED_PAGE
                    return
            self.entries.append(row)
            self._item(key)
            self._start, self._inclusive = key, False
        if len(rows) < self._asked:
            self.done = True
        elif self.delimiter:
            self._page = min(self._page * 2, MAX_PAGE)  # no prefix in a while: read further

    def _item(self, item: str) -> None:
        self._listed += 1
        self.next_start_after = item


@dataclass(frozen=True)
class _KeyRow:
    key: str


def list_sorted(
    keys: Sequence[str], prefix: str, delimiter: str, start_after: str, limit: int
) -> tuple[list[str], list[str], bool, str]:
    """Run a :class:`ListWalk` over an in-memory sorted list of keys (tests, tools)."""
    walk: ListWalk[_KeyRow] = ListWalk(prefix, delimiter, start_after, limit)
    while (page := walk.next_page()) is not None:
        lo = (bisect.bisect_left if page.inclusive else bisect.bisect_right)(keys, page.start)
        hi = len(keys) if page.end is None else bisect.bisect_left(keys, page.end)
        walk.feed([_KeyRow(k) for k in keys[lo : min(hi, lo + page.limit)]])
    return (
        [r.key for r in walk.entries],
        walk.prefixes,
        walk.truncated,
        walk.next_start_after if walk.truncated else "",
    )
