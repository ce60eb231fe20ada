from __future__ import annotations

from typing import Any

import pytest

from skymesh.codec import DEFAULT_SCHEME, RedundancyScheme, scheme_for_network
from skymesh.errors import CodecError, SchemeError


@pytest.mark.parametrize(
    "k, repair, optimal, total",
    [(8, 10, 12, 14), (1, 1, 1, 2), (1, 1, 2, 2), (2, 2, 3, 3), (29, 35, 50, 64), (63, 63, 63, 64)],
)
def test_valid_schemes(k: int, repair: int, optimal: int, total: int) -> None:
    scheme = RedundancyScheme(k, repair, optimal, total)
    assert scheme.parity == total - k
    assert scheme.expansion == optimal / k
    assert RedundancyScheme.parse(str(scheme)) == scheme


@pytest.mark.parametrize(
    "k, repair, optimal, total, why",
    [
        (0, 1, 2, 3, "k below 1"),
        (-1, 1, 2, 3, "negative k"),
        (4, 3, 5, 6, "repair below k"),
        (4, 6, 5, 6, "optimal below repair"),
        (4, 5, 7, 6, "total below optimal"),
        (4, 4, 4, 4, "no parity"),
        (1, 1, 1, 1, "no parity, one piece"),
        (8, 10, 12, 65, "over 64 pieces"),
        (8.0, 10, 12, 14, "float"),
        (True, 1, 1, 2, "bool"),
        ("8", 10, 12, 14, "text"),
    ],
)
def test_invalid_schemes(k: Any, repair: Any, optimal: Any, total: Any, why: str) -> None:
    # Any: the values are of the wrong types on purpose, for the check made at run time
    with pytest.raises(SchemeError):
        RedundancyScheme(k, repair, optimal, total)


def test_scheme_error_is_a_codec_error_with_a_message() -> None:
    with pytest.raises(CodecError, match="parity"):
        RedundancyScheme(3, 3, 3, 3)


def test_str_and_default() -> None:
    assert str(DEFAULT_SCHEME) == "8/10/12/14"
    assert DEFAULT_SCHEME.expansion == 1.5
    assert DEFAULT_SCHEME.parity == 6


@pytest.mark.parametrize(
    "text",
    [
        "",
        "8/10/12",
        "8/10/12/14/16",
        "a/b/c/d",
        "8,10,12,14",
        "8/10/12/-14",
        "8 /10/12/14x",
        "٨/10/12/14",
        "4/4/4/4",
        None,
    ],
)
def test_parse_rejects_junk(text: Any) -> None:  # None too: the check is at run time
    with pytest.raises(SchemeError):
        RedundancyScheme.parse(text)


def test_parse_tolerates_surrounding_space() -> None:
    assert RedundancyScheme.parse(" 4/5/6/6\n") == RedundancyScheme(4, 5, 6, 6)


@pytest.mark.parametrize(
    "nodes, expected",
    [
        (2, "1/1/2/2"),  # no room for a spare: a scheme needs two pieces
        (3, "1/1/2/2"),
        (4, "2/2/3/3"),
        (5, "2/3/4/4"),
        (6, "3/4/5/5"),
        (7, "4/5/6/6"),
        (9, "5/6/8/8"),
        (12, "6/8/10/10"),  # `skymesh up`: two spare nodes for repair
        (13, "7/9/11/11"),
        (14, "8/10/12/14"),
        (15, "8/10/12/14"),
        (1000, "8/10/12/14"),
    ],
)
def test_scheme_for_network(nodes: int, expected: str) -> None:
    assert str(scheme_for_network(nodes)) == expected


def test_small_networks_keep_spares_for_repair() -> None:
    for n in range(3, 14):
        scheme = scheme_for_network(n)
        assert scheme.total == scheme.optimal
        assert n - scheme.total >= max(1, n // 6)  # nodes left for rebuilt pieces
        assert scheme.parity >= 1
        # Round robin over three even regions puts ceil(total / 3) in the fullest one;
        # losing it must leave k.
        assert scheme.total - -(-scheme.total // 3) >= scheme.k
    assert scheme_for_network(2).total == 2


@pytest.mark.parametrize("nodes", [1, 0, -3])
def test_scheme_for_network_needs_two_nodes(nodes: int) -> None:
    with pytest.raises(SchemeError, match="at least 2 nodes"):
        scheme_for_network(nodes)
