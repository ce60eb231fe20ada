"""The Bloom filter of piece ids: no false negatives, about the false-positive rate asked for."""

from __future__ import annotations

import random

import pytest

from skymesh.codec.bloom import BloomFilter, optimal_size
from skymesh.errors import CodecError


def _ids(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [rnd.randbytes(32).hex() for _ in range(n)]


@pytest.mark.parametrize("count", [0, 1, 100, 20_000])
def test_members_are_always_in_and_strangers_rarely(count: int) -> None:
    members = _ids(count, 1)
    f = BloomFilter.for_count(count, 0.01, seed=b"\1" * 32)
    f.update(members)
    assert all(m in f for m in members)
    strangers = _ids(20_000, 2)
    rate = sum(s in f for s in strangers) / len(strangers)
    assert rate < 0.02 if count else rate == 0.0


def test_survives_the_wire_and_each_seed_lets_other_strangers_through() -> None:
    members, strangers = _ids(2000, 3), _ids(5000, 4)
    a = BloomFilter.for_count(len(members), 0.01, seed=b"\1" * 32)
    a.update(members)
    copy = BloomFilter(a.num_bits, a.hashes, a.seed, a.to_bytes())
    assert all(m in copy for m in members)
    assert [s in copy for s in strangers] == [s in a for s in strangers]
    b = BloomFilter.for_count(len(members), 0.01, seed=b"\2" * 32)
    b.update(members)
    both = {s for s in strangers if s in a} & {s for s in strangers if s in b}
    assert len(both) < 5  # a survivor of one round is deleted by the next


def test_sizing_and_bad_shapes() -> None:
    bits, hashes = optimal_size(1_000_000, 0.01)
    assert 9.5 < bits / 1_000_000 < 9.7 and hashes == 7  # ~1.2 MB for a million pieces
    with pytest.raises(CodecError):
        optimal_size(10, 1.5)
    with pytest.raises(CodecError):
        BloomFilter(64, 3, b"\0" * 32, b"\0" * 7)  # 56 bits, not 64
    with pytest.raises(CodecError):
        BloomFilter(63, 3, b"\0" * 32)
    with pytest.raises(CodecError):
        BloomFilter(64, 0, b"\0" * 32)
    with pytest.raises(CodecError):
        BloomFilter(64, 3, b"short")
