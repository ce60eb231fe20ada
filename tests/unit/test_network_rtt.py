"""The inter-region RTT matrix of `skymesh up --distance`: defaults, TOML, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import ConfigError
from skymesh.network.rtt import RttMatrix
from skymesh.network.up import DEFAULT_REGIONS


def test_the_default_covers_up_s_regions_symmetrically_and_keeps_eu_close() -> None:
    m = RttMatrix.default()
    m.check_covers(DEFAULT_REGIONS)
    for a in DEFAULT_REGIONS:
        assert m.ms(a, a) <= 2
        for b in DEFAULT_REGIONS:
            assert m.ms(a, b) == m.ms(b, a)
    assert m.ms("eu-west", "eu-central") < m.ms("eu-west", "us-east") < m.ms("eu-west", "ap-south")
    assert m.ms("us-east", "ap-south") == max(m.pairs.values())
    assert m.nearest("eu-west", ["ap-south", "us-east", "eu-central"]) == [
        "eu-central",
        "us-east",
        "ap-south",
    ]


def test_a_toml_file_names_each_pair_once_in_either_order(tmp_path: Path) -> None:
    path = tmp_path / "rtt.toml"
    path.write_text("same_region_ms = 0.5\n[rtt_ms.a]\nb = 10\n[rtt_ms.c]\na = 30.5\nb = 40\n")
    m = RttMatrix.load(path)
    assert m.ms("b", "a") == 10
    assert m.seconds("a", "c") == pytest.approx(0.0305)
    assert m.ms("c", "c") == 0.5
    m.check_covers(["a", "b", "c"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rtt_ms.a]\nb = -1\n", "finite and >= 0"),
        ("[rtt_ms.a]\nb = 'far'\n", "number of milliseconds"),
        ("rtt = 3\n", "unknown keys"),
        ("[rtt_ms]\na = 3\n", "must be a table"),
        ("[rtt_ms.a\n", "cannot read"),
    ],
)
def test_a_bad_file_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rtt.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        RttMatrix.load(path)


def test_a_missing_pair_is_named() -> None:
    m = RttMatrix.of({("a", "b"): 5})
    with pytest.raises(ConfigError, match="a <-> c, b <-> c"):
        m.check_covers(["a", "b", "c"])
