"""Round-trip times between the simulated regions of `skymesh up --distance`.

The default matrix is for the four regions ``skymesh up`` starts, read as the
cloud regions they are named after: eu-west (Ireland/London), eu-central
(Frankfurt), us-east (N. Virginia) and ap-south (Mumbai). The figures are median
inter-region round trips, rounded, as public measurements give them: AWS
inter-region latency on cloudping.co (eu-west-1 <-> eu-central-1 ~ 22 ms,
eu-west-1 <-> us-east-1 ~ 70-75 ms, eu-central-1 <-> us-east-1 ~ 90 ms,
eu-west-1 <-> ap-south-1 ~ 120-125 ms, eu-central-1 <-> ap-south-1 ~ 110-120 ms,
us-east-1 <-> ap-south-1 ~ 190-200 ms) and WonderNetwork's global ping
statistics, which agree within ~10%. Within a region (between availability zones
of one metro) a round trip is 1-2 ms.

A TOML file replaces them (``skymesh up --distance --rtt-matrix FILE``)::

    same_region_ms = 1.5
    [rtt_ms.eu-west]
    eu-central = 22
    us-east = 75

The matrix is symmetric: naming a pair once, in either order, is enough. Pure:
no I/O beyond reading the file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from skymesh.errors import ConfigError

SAME_REGION_MS = 1.5
DEFAULT_RTT_MS: dict[tuple[str, str], float] = {
    ("eu-west", "eu-central"): 22.0,
    ("eu-west", "us-east"): 75.0,
    ("eu-central", "us-east"): 90.0,
    ("eu-west", "ap-south"): 125.0,
    ("eu-central", "ap-south"): 115.0,
    ("us-east", "ap-south"): 195.0,
}


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class RttMatrix:
    """Symmetric round-trip times in milliseconds between named regions."""

    pairs: Mapping[tuple[str, str], float] = field(default_factory=dict)
    same_region_ms: float = SAME_REGION_MS

    @classmethod
    def default(cls) -> RttMatrix:
        return cls.of(DEFAULT_RTT_MS)

    @classmethod
    def of(
        cls, pairs: Mapping[tuple[str, str], float], same_region_ms: float = SAME_REGION_MS
    ) -> RttMatrix:
        """From ``{(a, b): ms}``; ConfigError for a negative or non-finite time."""
        out: dict[tuple[str, str], float] = {}
        for (a, b), ms in pairs.items():
            _check(f"{a} <-> {b}", ms)
            out[_key(a, b)] = float(ms)
        _check("same_region_ms", same_region_ms)
        return cls(out, float(same_region_ms))

    @classmethod
    def load(cls, path: Path) -> RttMatrix:
        """From a TOML file (the module docstring shows the format)."""
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read the RTT matrix {path}: {e}") from e
        unknown = set(doc) - {"same_region_ms", "rtt_ms"}
        if unknown:
            raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; use same_region_ms, rtt_ms")
        table = doc.get("rtt_ms", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: rtt_ms must be a table of tables")
        pairs: dict[tuple[str, str], float] = {}
        for a, row in table.items():
            if not isinstance(row, dict):
                raise ConfigError(f"{path}: [rtt_ms.{a}] must be a table of region = ms")
            for b, ms in row.items():
                if isinstance(ms, bool) or not isinstance(ms, int | float):
                    raise ConfigError(f"{path}: rtt_ms.{a}.{b} must be a number of milliseconds")
                pairs[(a, b)] = ms
        same = doc.get("same_region_ms", SAME_REGION_MS)
        if isinstance(same, bool) or not isinstance(same, int | float):
            raise ConfigError(f"{path}: same_region_ms must be a number")
        return cls.of(pairs, same)

    def ms(self, a: str, b: str) -> float:
        """Round trip between regions ``a`` and ``b`` in milliseconds; KeyError if unknown."""
        if a == b:
            return self.same_region_ms
        return self.pairs[_key(a, b)]

    def seconds(self, a: str, b: str) -> float:
        return self.ms(a, b) / 1000.0

    def check_covers(self, regions: Iterable[str]) -> None:
        """ConfigError naming every pair of ``regions`` the matrix lacks."""
        names = sorted(set(regions))
        missing = [
            f"{a} <-> {b}"
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if _key(a, b) not in self.pairs
        ]
        if missing:
            raise ConfigError(f"the RTT matrix has no round trip for {', '.join(missing)}")

    def nearest(self, origin: str, among: Iterable[str]) -> list[str]:
        """``among`` ordered from nearest to ``origin`` to farthest (ties by name)."""
        return sorted(set(among), key=lambda r: (self.ms(origin, r), r))


def _check(what: str, ms: float) -> None:
    if not math.isfinite(ms) or ms < 0:
        raise ConfigError(f"RTT {what} must be finite and >= 0 ms, got {ms}")
