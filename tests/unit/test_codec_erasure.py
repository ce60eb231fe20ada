from __future__ import annotations

import hashlib
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyeclib.ec_iface import ECDriver

from skymesh.codec import (
    DEFAULT_SCHEME,
    FRAGMENT_HEADER_SIZE,
    ErasureCoder,
    RedundancyScheme,
    fragment_size_for,
    isal,
)
from skymesh.codec import erasure as erasure_module
from skymesh.errors import CodecError, IntegrityError


def data(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


@st.composite
def schemes(draw: st.DrawFn, max_total: int = 20) -> RedundancyScheme:
    total = draw(st.integers(2, max_total))
    k = draw(st.integers(1, total - 1))
    return RedundancyScheme(k, k, total, total)


def test_fragment_size_rule_matches_real_encodes() -> None:
    """The closed form is what piece sizes and offsets rest on: prove it on real encodes."""
    rng = random.Random(1)
    lengths = [*range(1, 70), 127, 128, 129, 4095, 4096, 4097, 65535, 65536, 65537]
    for k in [*range(1, 21), 29, 32, 48, 63]:
        driver = ECDriver(k=k, m=1, ec_type="isa_l_rs_cauchy")
        for n in [*lengths, *(rng.randrange(1, 300_000) for _ in range(5))]:
            fragments = driver.encode(b"\xa5" * n)
            assert {len(f) for f in fragments} == {fragment_size_for(k, n)}, (k, n)
            assert driver.get_segment_info(n, n)["fragment_size"] == fragment_size_for(k, n)


def test_fragment_size_rejects_empty_stripes() -> None:
    with pytest.raises(CodecError):
        fragment_size_for(4, 0)
    with pytest.raises(CodecError):
        ErasureCoder(RedundancyScheme(2, 2, 3, 3)).encode(b"")


def test_code_is_systematic() -> None:
    """The decoder's fast path relies on data fragments holding the stripe in order."""
    for k, n in [(1, 10), (3, 100), (8, 65536), (8, 65531), (17, 999)]:
        coder = ErasureCoder(RedundancyScheme(k, k, k + 2, k + 2))
        stripe = data("sys", n)
        fragments = coder.encode(stripe)
        joined = b"".join(f[FRAGMENT_HEADER_SIZE:] for f in fragments[:k])
        assert joined[:n] == stripe
        assert joined[n:] == bytes(len(joined) - n)


@settings(max_examples=40, deadline=None)
@given(scheme=schemes(), n=st.integers(1, 3000), seed=st.integers(0, 2**32))
def test_any_k_fragments_decode(scheme: RedundancyScheme, n: int, seed: int) -> None:
    coder = ErasureCoder(scheme)
    stripe = data(f"stripe{seed}", n)
    fragments = coder.encode(memoryview(stripe))
    assert len(fragments) == scheme.total
    assert all(len(f) == coder.fragment_size(n) for f in fragments)
    rng = random.Random(seed)
    for _ in range(3):
        chosen = rng.sample(range(scheme.total), rng.randint(scheme.k, scheme.total))
        given_ = {i: memoryview(fragments[i]) for i in chosen}
        assert coder.decode(given_, n) == stripe


@settings(max_examples=25, deadline=None)
@given(scheme=schemes(), seed=st.integers(0, 2**32))
def test_batch_roundtrip_any_k_pieces(scheme: RedundancyScheme, seed: int) -> None:
    rng = random.Random(seed)
    coder = ErasureCoder(scheme)
    stripes = [data(f"b{seed}-{i}", rng.randint(1, 700)) for i in range(rng.randint(0, 6))]
    pieces = coder.encode_stripes([memoryview(s) for s in stripes])
    lens = [len(s) for s in stripes]
    assert all(len(p) == sum(coder.fragment_size(n) for n in lens) for p in pieces)
    # Each piece is its fragments side by side.
    for s_index, stripe in enumerate(stripes):
        offset = sum(coder.fragment_size(n) for n in lens[:s_index])
        size = coder.fragment_size(len(stripe))
        for i, fragment in enumerate(coder.encode(stripe)):
            assert pieces[i][offset : offset + size] == fragment
    chosen = rng.sample(range(scheme.total), scheme.k)
    out = coder.decode_stripes({i: pieces[i] for i in chosen}, lens)
    assert out == b"".join(stripes)


def test_decode_needs_k_fragments_of_the_right_size() -> None:
    scheme = RedundancyScheme(4, 4, 6, 6)
    coder = ErasureCoder(scheme)
    fragments = coder.encode(data("x", 1000))
    with pytest.raises(CodecError, match="need 4"):
        coder.decode({i: fragments[i] for i in range(3)}, 1000)
    with pytest.raises(IntegrityError):
        coder.decode(
            {0: fragments[0][:-1], 1: fragments[1], 2: fragments[2], 3: fragments[3]}, 1000
        )
    with pytest.raises(IntegrityError):
        coder.decode(dict(enumerate(fragments)), 999 - 8)  # sizes disagree with stripe_len
    with pytest.raises(CodecError):
        coder.decode({9: fragments[0], 1: fragments[1], 2: fragments[2], 3: fragments[3]}, 1000)
    with pytest.raises(CodecError):
        coder.decode({-1: fragments[0], 1: fragments[1], 2: fragments[2], 3: fragments[3]}, 1000)


def test_corrupt_header_is_an_integrity_error() -> None:
    coder = ErasureCoder(RedundancyScheme(4, 4, 6, 6))
    fragments = coder.encode(data("hdr", 1000))
    broken = bytearray(fragments[5])
    broken[:FRAGMENT_HEADER_SIZE] = bytes(FRAGMENT_HEADER_SIZE)
    with pytest.raises(IntegrityError):
        coder.decode({1: fragments[1], 2: fragments[2], 3: fragments[3], 5: bytes(broken)}, 1000)


@settings(max_examples=25, deadline=None)
@given(scheme=schemes(), n=st.integers(1, 2000), seed=st.integers(0, 2**32))
def test_reconstruct_rebuilds_exact_fragments(scheme: RedundancyScheme, n: int, seed: int) -> None:
    rng = random.Random(seed)
    coder = ErasureCoder(scheme)
    fragments = coder.encode(data(f"r{seed}", n))
    missing = rng.sample(range(scheme.total), rng.randint(1, scheme.parity))
    available = [i for i in range(scheme.total) if i not in missing]
    chosen = rng.sample(available, rng.randint(scheme.k, len(available)))
    rebuilt = coder.reconstruct({i: fragments[i] for i in chosen}, n, missing)
    assert rebuilt == {i: fragments[i] for i in missing}


def test_reconstruct_stripes_rebuilds_whole_pieces() -> None:
    scheme = RedundancyScheme(5, 6, 8, 9)
    coder = ErasureCoder(scheme)
    stripes = [data(f"rs{i}", 1000 + i) for i in range(5)]
    pieces = coder.encode_stripes(stripes)
    lens = [len(s) for s in stripes]
    rebuilt = coder.reconstruct_stripes({i: pieces[i] for i in (1, 3, 5, 6, 8)}, lens, [0, 7])
    assert rebuilt == {0: pieces[0], 7: pieces[7]}
    with pytest.raises(CodecError):
        coder.reconstruct_stripes({i: pieces[i] for i in range(5)}, lens, [4])
    with pytest.raises(CodecError):
        coder.reconstruct_stripes({i: pieces[i] for i in range(5)}, lens, [9])


@pytest.mark.parametrize("k, total", [(1, 2), (1, 64), (32, 64), (60, 64), (29, 40)])
def test_extreme_schemes(k: int, total: int) -> None:
    coder = ErasureCoder(RedundancyScheme(k, k, total, total))
    stripe = data("extreme", 5000)
    fragments = coder.encode(stripe)
    last = dict(list(enumerate(fragments))[-k:])  # parity-heavy subset
    assert coder.decode(last, len(stripe)) == stripe


def test_shared_coder_across_threads() -> None:
    """pyeclib holds the GIL per call, so one coder serves many threads correctly."""
    coder = ErasureCoder(RedundancyScheme(8, 10, 12, 14))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            rng = random.Random(seed)
            for j in range(30):
                stripe = data(f"t{seed}-{j}", rng.randint(1, 20_000))
                fragments = coder.encode(stripe)
                chosen = rng.sample(range(14), 8)
                assert coder.decode({i: fragments[i] for i in chosen}, len(stripe)) == stripe
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_default_scheme_calls_isal_directly() -> None:
    """The wheel's ISA-L is found and agrees with pyeclib, or the fast path is lost."""
    assert ErasureCoder(DEFAULT_SCHEME).direct


@settings(max_examples=40, deadline=None)
@given(scheme=schemes(), n=st.integers(1, 70_000), seed=st.integers(0, 2**32))
def test_stripe_writer_makes_pyeclibs_fragments(
    scheme: RedundancyScheme, n: int, seed: int
) -> None:
    """Pieces are a stored format: ISA-L called directly must write pyeclib's bytes."""
    coder = ErasureCoder(scheme)
    stripe = data(f"w{seed}", n)
    writer = coder.stripe_writer(n + seed % 3)  # a writer may be wider than the stripe
    pieces = [bytearray(b"\xee" * (3 + coder.fragment_size(n))) for _ in range(scheme.total)]
    writer.buffer(n)[:] = stripe
    assert writer.write(n, pieces, 3) == coder.fragment_size(n)
    assert [bytes(p[3:]) for p in pieces] == coder.encode(stripe)
    assert all(p[:3] == b"\xee" * 3 for p in pieces)


def test_without_isal_pyeclib_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    scheme = RedundancyScheme(4, 4, 7, 7)
    stripes = [data(f"f{i}", 1000 + 37 * i) for i in range(4)]
    monkeypatch.setattr(erasure_module, "_direct", {})
    monkeypatch.setattr(isal, "library", lambda: None)
    slow = ErasureCoder(scheme)
    monkeypatch.undo()
    fast = ErasureCoder(scheme)
    assert fast.direct and not slow.direct

    def encoded(coder: ErasureCoder) -> list[bytes]:
        sizes = [coder.fragment_size(len(s)) for s in stripes]
        pieces = [bytearray(sum(sizes)) for _ in range(scheme.total)]
        writer = coder.stripe_writer(max(len(s) for s in stripes))
        offset = 0
        for stripe in stripes:
            writer.buffer(len(stripe))[:] = stripe
            offset += writer.write(len(stripe), pieces, offset)
        return [bytes(p) for p in pieces]

    pieces = encoded(slow)
    assert pieces == encoded(fast)
    given_ = {i: pieces[i] for i in (1, 3, 5, 6)}  # data pieces 0 and 2 missing
    lens = [len(s) for s in stripes]
    assert (
        slow.decode_stripes(given_, lens) == fast.decode_stripes(given_, lens) == b"".join(stripes)
    )


def test_degraded_decode_refuses_a_fragment_of_another_piece() -> None:
    scheme = RedundancyScheme(4, 4, 7, 7)
    coder = ErasureCoder(scheme)
    pieces = coder.encode_stripes([data("x", 5000)])
    swapped = {1: pieces[1], 2: pieces[2], 3: pieces[3], 5: pieces[6]}  # 6's bytes as 5
    with pytest.raises(IntegrityError, match="header"):
        coder.decode_stripes(swapped, [5000])


@settings(max_examples=30, deadline=None)
@given(
    scheme=schemes(),
    lens=st.lists(st.integers(1, 9000), min_size=1, max_size=4),
    seed=st.integers(0, 2**32),
)
def test_staged_runs_make_pyeclibs_fragments(
    scheme: RedundancyScheme, lens: list[int], seed: int
) -> None:
    """A run's parity comes from one ISA-L call over the pieces' bytes, headers
    included, and the parity headers are written after it: still pyeclib's bytes."""
    coder = ErasureCoder(scheme)
    stripes = [data(f"r{seed}.{i}", n) for i, n in enumerate(lens)]
    writer = coder.stripe_writer(max(lens))
    size = sum(coder.fragment_size(n) for n in lens)
    pieces = [bytearray(b"\xee" * (5 + size)) for _ in range(scheme.total)]
    offset = 5
    for stripe in stripes:
        writer.buffer(len(stripe))[:] = stripe
        offset += writer.stage(len(stripe), pieces, offset)
    writer.complete(pieces)
    expected = [coder.encode(stripe) for stripe in stripes]
    assert [bytes(p[5:]) for p in pieces] == [b"".join(fs) for fs in zip(*expected, strict=True)]
    assert all(p[:5] == b"\xee" * 5 for p in pieces)
    assert coder.encode_stripes(stripes) == [p[5:] for p in pieces]


def test_staged_stripes_must_follow_each_other() -> None:
    coder = ErasureCoder(RedundancyScheme(4, 4, 6, 6))
    writer = coder.stripe_writer(100)
    pieces = [bytearray(1000) for _ in range(6)]
    writer.buffer(100)[:] = data("s", 100)
    size = writer.stage(100, pieces, 0)
    with pytest.raises(CodecError, match="follow"):
        writer.stage(100, pieces, size + 1)
