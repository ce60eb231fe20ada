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


def walk_start(prefix: str, marker: str) -> tuple[str, bool, str | None]:
    """Where a listing's range scan starts (key, inclusive) and ends, for both walks."""
    end = prefix_end(prefix) if prefix else None
    if prefix > marker:
        return prefix, True, end
    return marker, False, end


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` rolls up into under ``delimiter``, or None."""
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[: cut + len(delimiter)] if cut >= 0 else None


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
        self._start, self._inclusive, self._end = walk_start(self.prefix, self.start_after)
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
            common = common_prefix(key, self.prefix, self.delimiter)
            if common is not None:
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


# ---------------------------------------------------------------- ListObjectVersions


class HasVersion(Protocol):
    """A row of a key that has several: ``seq`` orders the rows within the key (an
    object's version seq; a multipart upload's id, as ListMultipartUploads uses it)."""

    @property
    def key(self) -> str: ...

    @property
    def seq(self) -> int | str: ...


V = TypeVar("V", bound=HasVersion)


@dataclass(frozen=True)
class VersionPage:
    """Versions to read next, in (key, seq) order, at most ``limit``.

    With ``within`` set: the versions of that key after seq ``after`` (the rest of a
    key a page or a marker stopped in). Otherwise every version of the keys in
    ``keys`` (a :class:`KeyPage` range).
    """

    keys: KeyPage
    within: str | None = None
    after: int | str = 0


@dataclass
class VersionWalk(Generic[V]):
    """:class:`ListWalk` over versions: a key has several rows, newest (lowest seq) first.

    S3's ListObjectVersions: ``key_marker`` alone skips every version of that key;
    with ``marker_seq`` (the seq of the version-id-marker) the listing resumes with
    the versions of ``key_marker`` after it. Versions, delete markers and common
    prefixes count towards ``limit``; when truncated, the last item listed is the
    next marker (``next_row`` is None when it was a common prefix).
    """

    prefix: str
    delimiter: str
    key_marker: str
    marker_seq: int | str | None
    limit: int
    entries: list[V] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_key_marker: str = ""
    next_row: V | None = None
    done: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        self._start, self._inclusive, self._end = walk_start(self.prefix, self.key_marker)
        self._within: tuple[str, int | str] | None = None
        if self.marker_seq is not None and self.key_marker.startswith(self.prefix):
            self._within = (self.key_marker, self.marker_seq)
        self._listed = 0
        self._page = MIN_DELIMITED_PAGE if self.delimiter else MAX_PAGE
        self._asked = 0

    def next_page(self) -> VersionPage | None:
        if self.done:
            return None
        self._asked = min(self.limit - self._listed + 1, self._page, MAX_PAGE)
        keys = KeyPage(self._start, self._inclusive, self._end, self._asked)
        if self._within is not None:
            return VersionPage(keys, self._within[0], self._within[1])
        return VersionPage(keys)

    def feed(self, rows: Sequence[V]) -> None:
        """The rows of the page :meth:`next_page` asked for, in (key, seq) order."""
        within = self._within is not None
        last: V | None = None
        for row in rows:
            if self._listed == self.limit:
                self.truncated = True
                self.done = True
                return
            key = row.key
            common = common_prefix(key, self.prefix, self.delimiter)
            if common is not None:
                if common > self.key_marker:
                    self.prefixes.append(common)
                    self._item(common, None)
                after = prefix_end(common)
                self._within = None
                if after is None:
                    self.done = True
                else:
                    self._start, self._inclusive = after, True
                    self._page = MIN_DELIMITED_PAGE
                return
            self.entries.append(row)
            self._item(key, row)
            last = row
        if len(rows) < self._asked:
            if within:  # the rest of that key is listed: go on after it
                assert self._within is not None
                self._start, self._inclusive = self._within[0], False
                self._within = None
            else:
                self.done = True
            return
        if last is not None:  # more of this key may follow
            self._within = (last.key, last.seq)
            self._start, self._inclusive = last.key, False
        if self.delimiter:
            self._page = min(self._page * 2, MAX_PAGE)

    def _item(self, key: str, row: V | None) -> None:
        self._listed += 1
        self.next_key_marker = key
        self.next_row = row
