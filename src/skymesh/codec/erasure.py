"""Reed-Solomon erasure coding of ciphertext stripes (pyeclib, ISA-L Cauchy).

Each stripe (one encrypted block) becomes ``total`` fragments; any ``k`` rebuild it.
Fragments keep pyeclib's 80-byte header as they are, and a piece is the
concatenation of its fragments of consecutive stripes, so a stripe's fragment sits
at the same offset in every piece and piece sizes follow from arithmetic alone.

Fragment size rule: ``80 + ceil(stripe_len / k)``. liberasurecode pads a stripe to
a multiple of ``k`` words and ISA-L's word is one byte. Checked against real
encodes in the tests, and against ``get_segment_info`` once per driver at run time,
so a library upgrade that changes the rule fails loudly instead of misplacing bytes.

ISA-L Cauchy, not Vandermonde: ``isa_l_rs_vand`` cannot decode some piece subsets
once there are 6 or more parity pieces.

Threads: the pyeclib_c extension never releases the GIL (it imports neither
``PyEval_SaveThread`` nor ``PyGILState_*``), so every call into one driver runs
whole under the GIL. Sharing a driver between threads is therefore safe, and we
share one per (k, m), but RS work never runs on two cores at once: measured here,
two threads encoding together reach the same GB/s as one. AES-GCM and BLAKE3 do
release the GIL, so threads still pay off for the rest of the pipeline; for
parallel RS use processes.

Integrity: RS has no checksum. A corrupt fragment decodes to a wrong stripe, which
the AES-GCM tag then rejects; reconstruct (repair, which never decrypts) must only
be fed fragments already verified against their piece's Merkle root.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

from pyeclib.ec_iface import ECDriver, ECDriverError

from skymesh.codec.scheme import RedundancyScheme
from skymesh.errors import CodecError, IntegrityError

EC_TYPE = "isa_l_rs_cauchy"
FRAGMENT_HEADER_SIZE = 80

Buffer = bytes | bytearray | memoryview

_drivers: dict[tuple[int, int], ECDriver] = {}
_drivers_lock = threading.Lock()


def fragment_size_for(k: int, stripe_len: int) -> int:
    """Exact length of each fragment (header included) of a ``stripe_len``-byte stripe."""
    if stripe_len < 1:
        raise CodecError(f"stripe length must be positive, got {stripe_len}")
    return FRAGMENT_HEADER_SIZE + -(-stripe_len // k)


def _driver(k: int, m: int) -> ECDriver:
    """One shared driver per shape: creating one builds ISA-L tables, and calls
    are serialized by the GIL anyway (see module docstring)."""
    driver = _drivers.get((k, m))
    if driver is not None:
        return driver
    with _drivers_lock:
        driver = _drivers.get((k, m))
        if driver is None:
            try:
                driver = ECDriver(k=k, m=m, ec_type=EC_TYPE)
            except ECDriverError as exc:
                raise CodecError(f"cannot create {EC_TYPE} coder k={k} m={m}: {exc}") from exc
            probe = 65536
            got = driver.get_segment_info(probe, probe)["fragment_size"]
            if got != fragment_size_for(k, probe):
                raise CodecError(
                    f"pyeclib fragment size rule changed: {got} != {fragment_size_for(k, probe)}"
                )
            _drivers[(k, m)] = driver
    return driver


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class ErasureCoder:
    """Erasure coding for one scheme. Cheap to create; safe to share across threads."""

    __slots__ = ("_driver", "k", "m", "scheme", "total")

    def __init__(self, scheme: RedundancyScheme) -> None:
        self.scheme = scheme
        self.k = scheme.k
        self.m = scheme.total - scheme.k
        self.total = scheme.total
        self._driver = _driver(self.k, self.m)

    def fragment_size(self, stripe_len: int) -> int:
        return fragment_size_for(self.k, stripe_len)

    # -- one stripe -------------------------------------------------------------

    def encode(self, stripe: Buffer) -> list[bytes]:
        if len(stripe) == 0:
            raise CodecError("cannot encode an empty stripe")
        # pyeclib_c only takes bytes proper.
        data = stripe if isinstance(stripe, bytes) else bytes(stripe)
        try:
            fragments: list[bytes] = self._driver.encode(data)
        except ECDriverError as exc:
            raise CodecError(f"erasure encode failed: {exc}") from exc
        return fragments

    def decode(self, fragments: Mapping[int, Buffer], stripe_len: int) -> bytes:
        """Any k or more fragments, by piece number, back to the stripe.

        ``stripe_len`` comes from the layout and is trusted: with all data pieces
        present the headers go unread, so a wrong length that yields the same
        fragment size is not caught here (the stripe's AEAD tag catches it).
        """
        for view in self._stripes({i: _byte_view(f) for i, f in fragments.items()}, [stripe_len]):
            return bytes(view)
        raise AssertionError("unreachable: one stripe length gives one stripe")

    def reconstruct(
        self, fragments: Mapping[int, Buffer], stripe_len: int, missing: Sequence[int]
    ) -> dict[int, bytes]:
        """Rebuild the fragments ``missing`` of one stripe from any k others."""
        views = {i: _byte_view(f) for i, f in fragments.items()}
        rebuilt = self.reconstruct_stripes(views, [stripe_len], missing)
        return {i: bytes(b) for i, b in rebuilt.items()}

    # -- many stripes per call ------------------------------------------------

    def encode_stripes(self, stripes: Sequence[Buffer]) -> list[bytearray]:
        """Per piece number, that piece's fragments of all ``stripes`` in order."""
        sizes = [self.fragment_size(len(s)) for s in stripes]
        pieces = [bytearray(sum(sizes)) for _ in range(self.total)]
        views = [memoryview(p) for p in pieces]
        offset = 0
        for stripe, size in zip(stripes, sizes, strict=True):
            end = offset + size
            for view, fragment in zip(views, self.encode(stripe), strict=True):
                view[offset:end] = fragment
            offset = end
        return pieces

    def decode_stripes(self, pieces: Mapping[int, Buffer], stripe_lens: Sequence[int]) -> bytearray:
        out = bytearray(sum(stripe_lens))
        view = memoryview(out)
        pos = 0
        for stripe in self.iter_decode(pieces, stripe_lens):
            end = pos + len(stripe)
            view[pos:end] = stripe
            pos = end
        return out

    def iter_decode(
        self, pieces: Mapping[int, Buffer], stripe_lens: Sequence[int]
    ) -> Iterator[memoryview]:
        """Yield each decoded stripe in turn, without one big output buffer.

        Each view is valid only until the next one is asked for (buffers are
        reused); copy or consume it first. All arguments are checked before the
        first stripe is yielded.
        """
        return self._stripes({i: _byte_view(p) for i, p in pieces.items()}, stripe_lens)

    def reconstruct_stripes(
        self, pieces: Mapping[int, Buffer], stripe_lens: Sequence[int], missing: Sequence[int]
    ) -> dict[int, bytearray]:
        """Rebuild whole pieces ``missing`` from any k others, stripe by stripe (repair)."""
        views = {i: _byte_view(p) for i, p in pieces.items()}
        sizes = self._check(views, stripe_lens)
        wanted = sorted(set(missing))
        for i in wanted:
            if not 0 <= i < self.total:
                raise CodecError(f"piece {i} out of range 0..{self.total - 1}")
            if i in views:
                raise CodecError(f"piece {i} is both given and missing")
        out = {i: bytearray(sum(sizes)) for i in wanted}
        outs = {i: memoryview(b) for i, b in out.items()}
        use = sorted(views)
        offset = 0
        for size in sizes:
            end = offset + size
            fragments = [bytes(views[i][offset:end]) for i in use]
            try:
                rebuilt = self._driver.reconstruct(fragments, list(wanted))
            except ECDriverError as exc:
                raise IntegrityError(f"erasure reconstruct failed: {exc}") from exc
            for i, fragment in zip(wanted, rebuilt, strict=True):
                if len(fragment) != size:
                    raise IntegrityError(f"reconstructed fragment {i} has the wrong size")
                outs[i][offset:end] = fragment
            offset = end
        return out

    # -- internals ----------------------------------------------------------------

    def _check(self, views: Mapping[int, memoryview], stripe_lens: Sequence[int]) -> list[int]:
        for i in views:
            if not 0 <= i < self.total:
                raise CodecError(f"piece {i} out of range 0..{self.total - 1}")
        if len(views) < self.k:
            raise CodecError(f"need {self.k} pieces to decode, got {len(views)}")
        sizes = [self.fragment_size(n) for n in stripe_lens]
        expected = sum(sizes)
        for i, view in views.items():
            if len(view) != expected:
                raise IntegrityError(
                    f"piece {i} holds {len(view)} bytes for these stripes, expected {expected}"
                )
        return sizes

    def _stripes(
        self, views: Mapping[int, memoryview], stripe_lens: Sequence[int]
    ) -> Iterator[memoryview]:
        sizes = self._check(views, stripe_lens)
        if all(i in views for i in range(self.k)):
            return self._systematic(views, stripe_lens, sizes)
        return self._rs_decode(views, stripe_lens, sizes)

    def _systematic(
        self, views: Mapping[int, memoryview], stripe_lens: Sequence[int], sizes: list[int]
    ) -> Iterator[memoryview]:
        """All data pieces at hand: the code is systematic, so the stripe is just
        their payloads side by side. Skips pyeclib's bytes copies and header
        parsing; the headers go unread, which is harmless because the AEAD tag
        checks every stripe byte and the Merkle root every piece byte."""
        k = self.k
        data = [views[i] for i in range(k)]
        buf = memoryview(bytearray(max(sizes, default=FRAGMENT_HEADER_SIZE) * k))
        offset = 0
        for n, size in zip(stripe_lens, sizes, strict=True):
            start = offset + FRAGMENT_HEADER_SIZE
            end = offset + size
            payload = size - FRAGMENT_HEADER_SIZE
            if k == 1:
                yield data[0][start : start + n]
            else:
                pos = 0
                for view in data:
                    buf[pos : pos + payload] = view[start:end]
                    pos += payload
                yield buf[:n]
            offset = end

    def _rs_decode(
        self, views: Mapping[int, memoryview], stripe_lens: Sequence[int], sizes: list[int]
    ) -> Iterator[memoryview]:
        # The lowest piece numbers hold the most data fragments: least RS work.
        use = sorted(views)[: self.k]
        offset = 0
        for n, size in zip(stripe_lens, sizes, strict=True):
            end = offset + size
            fragments = [bytes(views[i][offset:end]) for i in use]
            try:
                stripe: bytes = self._driver.decode(fragments)
            except ECDriverError as exc:
                raise IntegrityError(f"erasure decode failed: {exc}") from exc
            if len(stripe) != n:
                raise IntegrityError(f"erasure decode gave {len(stripe)} bytes, expected {n}")
            yield memoryview(stripe)
            offset = end
