"""The pure parts of spot checks: comparing answers (gateway), and the exclusion rule
(coordinator/overlay/compute_reputation.py)."""

from __future__ import annotations

import struct

import pytest

from skymesh.coordinator.overlay.compute_reputation import (
    ComputeParams,
    ComputeStanding,
    apply_check,
    contradicting,
    should_exclude,
)
from skymesh.gateway.openai.spotcheck import chats_agree, cosine, embeddings_agree

P = ComputeParams()


def vec(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


# ---------------------------------------------------------------- comparing answers


def test_cosine() -> None:
    assert cosine(vec(1, 0), vec(1, 0)) == pytest.approx(1.0)
    assert cosine(vec(1, 0), vec(0, 2)) == pytest.approx(0.0)
    assert cosine(vec(1, 1), vec(-1, -1)) == pytest.approx(-1.0)
    assert cosine(vec(0, 0), vec(1, 0)) == 0.0  # a zero vector agrees with nothing
    assert cosine(vec(float("nan"), 0), vec(1, 0)) == 0.0


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        ([vec(1, 0, 0)], [vec(1, 0.01, 0)], True),
        ([vec(1, 0, 0)], [vec(1, 0.3, 0)], False),  # cosine 0.958
        ([vec(1, 0), vec(0, 1)], [vec(1, 0), vec(1, 0)], False),  # one of two differs
        ([vec(1, 0)], [vec(1, 0), vec(1, 0)], False),  # another count
        ([vec(1, 0)], [vec(1, 0, 0)], False),  # another length
        ([b"\x00\x00\x80"], [b"\x00\x00\x80"], False),  # not float32
        ([], [], True),
    ],
)
def test_embeddings_agree(a: list[bytes], b: list[bytes], agree: bool) -> None:
    assert embeddings_agree(a, b, 0.99) is agree


@pytest.mark.parametrize(
    ("a", "a_finish", "b", "b_finish", "agree"),
    [
        (["Blue", "."], "stop", ["Blue", "."], "stop", True),
        (["Blue", "."], "stop", ["Red", "."], "stop", False),
        (["Blue", "."], "stop", ["Blue", ".", " It"], "length", False),  # stopped vs went on
        (["Blue"], "stop", ["Blue"], "length", False),
        # both at least 3 pieces: the first 3 decide, the rest is not compared
        (["a", "b", "c", "d"], "length", ["a", "b", "c"], None, True),
        (["a", "b", "c", "d"], "stop", ["a", "b", "c", "x"], "length", True),
        (["a", "b", "x", "d"], "length", ["a", "b", "c"], None, False),
        (["Actually,a", "b", "c"], "length", ["a", "b", "c"], None, False),
    ],
)
def test_chats_agree(
    a: list[str], a_finish: str, b: list[str], b_finish: str | None, agree: bool
) -> None:
    assert chats_agree(a, a_finish, b, b_finish, 3) is agree
    assert chats_agree(b, b_finish, a, a_finish, 3) is agree  # symmetric


# ---------------------------------------------------------------- the exclusion rule


def run(outcomes: str) -> ComputeStanding:
    """Apply ``outcomes`` ("a": agree, "d": disagree) from a fresh start."""
    st = ComputeStanding.new("n", P)
    for o in outcomes:
        st = apply_check(st, o == "a", P)
    return st


def test_score_falls_by_lambda_per_disagreement_and_recovers_with_agreements() -> None:
    assert run("").score == 1.0
    assert run("aaaa").score == 1.0
    assert run("dddd").score == pytest.approx(0.95**4)
    assert run("ddddd").score == pytest.approx(0.95**5) and run("ddddd").score < 0.8
    assert run("ddddd" + "a" * 30).score > 0.8
    st = run("adda")
    assert (st.agreed, st.disagreed, st.checks) == (2, 2, 4)


@pytest.mark.parametrize(
    ("outcomes", "contradictors"),
    [
        ({}, []),
        ({"liar": (0, 8)}, ["liar"]),
        ({"liar": (0, 1)}, []),  # one disagreement may be a fluke
        ({"honest": (9, 2)}, []),  # outnumbered by agreements
        ({"honest": (2, 2)}, []),  # not more than the agreements
        ({"x": (1, 2), "y": (0, 3), "z": (5, 1)}, ["x", "y"]),
    ],
)
def test_which_operators_contradict_a_node(
    outcomes: dict[str, tuple[int, int]], contradictors: list[str]
) -> None:
    assert contradicting(outcomes) == contradictors


@pytest.mark.parametrize(
    ("outcomes", "contradictors", "excluded"),
    [
        ("d" * 8, ["liar"], False),  # one lying operator frames no one, however often
        ("d" * 8, ["liar", "liar"], False),  # its many nodes are one operator
        ("d" * 8, ["x", "y"], True),
        ("dddd", ["x", "y"], False),  # score 0.81: not below 0.8 yet
        ("ddddd" + "aaaaa", ["x", "y"], False),  # agreements since raised it again
        ("ad" * 10, ["x", "y"], True),  # wrong half the time: 0.67
    ],
)
def test_exclusion_needs_a_low_score_and_distinct_contradicting_operators(
    outcomes: str, contradictors: list[str], excluded: bool
) -> None:
    assert should_exclude(run(outcomes), contradictors, P) is excluded


def test_an_excluded_node_is_not_excluded_again() -> None:
    from dataclasses import replace

    st = replace(run("d" * 8), excluded_at=1.0)
    assert not should_exclude(st, ["x", "y"], P)
