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

Threads and speed: the pyeclib_c extension never releases the GIL (it imports
neither ``PyEval_SaveThread`` nor ``PyGILState_*``), copies every stripe and returns
fresh ``bytes`` per fragment. So the hot paths, encoding (:class:`StripeWriter`) and
decoding around missing data pieces, call ISA-L itself through ctypes
(:mod:`skymesh.codec.isal`): the same matrix and layout, checked byte for byte
against pyeclib when a shape's coder is first built, with the GIL released. pyeclib
stays the reference: it writes the fragment headers, rebuilds pieces for repair,
and does everything where ISA-L cannot be loaded.

Integrity: RS has no checksum. A corrupt fragment decodes to a wrong stripe, which
the AES-GCM tag then rejects; reconstruct (repair, which never decrypts) must only
be fed fragments already verified against their piece's Merkle root.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence

from pyeclib.ec_iface import ECDriver, ECDriverError

from skymesh.codec import isal
from skymesh.codec.scheme import RedundancyScheme
from skymesh.errors import CodecError, IntegrityError

log = logging.getLogger(__name__)

EC_TYPE = "isa_l_rs_cauchy"
FRAGMENT_HEADER_SIZE = 80

Buffer = bytes | bytearray | memoryview
#: A piece's bytes for some stripes: whole, or as the consecutive parts it arrived in
#: (a reader hands the network's chunks on rather than copy them into one buffer).
PieceBytes = Buffer | Sequence[Buffer]

_drivers: dict[tuple[int, int], ECDriver] = {}
_drivers_lock = threading.Lock()
_direct: dict[tuple[int, int], isal.CauchyRS | None] = {}
_headers: dict[tuple[int, int, int], list[bytes]] = {}
_HEADER_CACHE = 256  # (shape, stripe length)s whose fragment headers are kept


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


def _headers_for(driver: ECDriver, k: int, m: int, stripe_len: int) -> list[bytes]:
    """pyeclib's 80-byte fragment headers for one stripe length: they depend on the
    piece number and the lengths only, so one encode of zeros gives them for good."""
    key = (k, m, stripe_len)
    headers = _headers.get(key)
    if headers is None:
        if len(_headers) >= _HEADER_CACHE:
            _headers.clear()
        made = driver.encode(bytes(stripe_len))
        headers = _headers[key] = [f[:FRAGMENT_HEADER_SIZE] for f in made]
    return headers


def _direct_rs(k: int, m: int, driver: ECDriver) -> isal.CauchyRS | None:
    """ISA-L for this shape, once it has made exactly pyeclib's fragments; else None."""
    with _drivers_lock:
        if (k, m) in _direct:
            return _direct[(k, m)]
    lib = isal.library()
    rs = isal.CauchyRS(lib, k, m) if lib is not None else None
    if rs is not None:
        lens = (65536, 8 * k + 5)  # a full stripe, and a short padded one
        stripes = [os.urandom(n) for n in lens]
        expected = [driver.encode(stripe) for stripe in stripes]
        writer = StripeWriter(k, m, max(lens), rs, driver)
        # one stripe at a time (write), then both as one run (stage, complete)
        one_by_one = [
            [bytes(f) for f in _written(writer, [stripe], staged=False)] for stripe in stripes
        ]
        as_a_run = [bytes(f) for f in _written(writer, stripes, staged=True)]
        if one_by_one != expected or as_a_run != [
            b"".join(fs) for fs in zip(*expected, strict=True)
        ]:
            log.warning(
                "ISA-L called directly disagrees with pyeclib for %d+%d; using pyeclib", k, m
            )
            rs = None
    with _drivers_lock:
        return _direct.setdefault((k, m), rs)


def _written(writer: StripeWriter, stripes: Sequence[Buffer], staged: bool) -> list[bytearray]:
    """Per piece number, the fragments of ``stripes`` as ``writer`` writes them."""
    size = sum(writer.fragment_size(len(s)) for s in stripes)
    pieces = [bytearray(size) for _ in range(writer.k + writer.m)]
    offset = 0
    for stripe in stripes:
        writer.buffer(len(stripe))[:] = stripe
        put = writer.stage if staged else writer.write
        offset += put(len(stripe), pieces, offset)
    writer.complete(pieces)
    return pieces


def _parts_of(piece: PieceBytes) -> list[memoryview]:
    if isinstance(piece, bytes | bytearray | memoryview):
        return [_byte_view(piece)]
    return [_byte_view(p) for p in piece]


def _gather(parts: Sequence[memoryview], at: int, lo: int, hi: int, into: memoryview) -> None:
    """Bytes [lo, hi) counted from the start of ``parts[at]``, on across the next parts."""
    pos = 0
    while pos < len(into):
        part = parts[at]
        take = min(len(part), hi) - lo
        into[pos : pos + take] = part[lo : lo + take]
        pos += take
        hi -= len(part)
        lo = 0
        at += 1


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class ErasureCoder:
    """Erasure coding for one scheme. Cheap to create; safe to share across threads."""

    __slots__ = ("_driver", "_rs", "k", "m", "scheme", "total")

    def __init__(self, scheme: RedundancyScheme) -> None:
        self.scheme = scheme
        self.k = scheme.k
        self.m = scheme.total - scheme.k
        self.total = scheme.total
        self._driver = _driver(self.k, self.m)
        self._rs = _direct_rs(self.k, self.m, self._driver) if self.m else None

    @property
    def direct(self) -> bool:
        """Whether encoding and degraded decoding call ISA-L directly (else pyeclib)."""
        return self._rs is not None

    def stripe_writer(self, max_stripe_len: int) -> StripeWriter:
        """A writer for stripes of up to ``max_stripe_len`` bytes; one per thread."""
        return StripeWriter(self.k, self.m, max_stripe_len, self._rs, self._driver)

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
        if any(len(s) == 0 for s in stripes):
            raise CodecError("cannot encode an empty stripe")
        writer = self.stripe_writer(max((len(s) for s in stripes), default=1))
        return _written(writer, stripes, staged=True)

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
        self, pieces: Mapping[int, PieceBytes], stripe_lens: Sequence[int]
    ) -> Iterator[memoryview]:
        """Yield each decoded stripe in turn, without one big output buffer.

        Each view is valid only until the next one is asked for (buffers are
        reused); copy or consume it first. All arguments are checked before the
        first stripe is yielded. A piece given in parts is read where it lies when
        every data piece is there (each payload is copied once, into its stripe);
        otherwise its parts are joined first.
        """
        parts = {i: _parts_of(p) for i, p in pieces.items()}
        if all(i in parts for i in range(self.k)):
            sizes = self._check({i: sum(map(len, ps)) for i, ps in parts.items()}, stripe_lens)
            return self._systematic(parts, stripe_lens, sizes)
        views = {i: ps[0] if len(ps) == 1 else memoryview(b"".join(ps)) for i, ps in parts.items()}
        return self._stripes(views, stripe_lens)

    def reconstruct_stripes(
        self, pieces: Mapping[int, Buffer], stripe_lens: Sequence[int], missing: Sequence[int]
    ) -> dict[int, bytearray]:
        """Rebuild whole pieces ``missing`` from any k others, stripe by stripe (repair)."""
        views = {i: _byte_view(p) for i, p in pieces.items()}
        sizes = self._check({i: len(v) for i, v in views.items()}, stripe_lens)
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

    def _check(self, lengths: Mapping[int, int], stripe_lens: Sequence[int]) -> list[int]:
        """The stripes' fragment sizes, once the pieces' numbers and ``lengths`` fit them."""
        for i in lengths:
            if not 0 <= i < self.total:
                raise CodecError(f"piece {i} out of range 0..{self.total - 1}")
        if len(lengths) < self.k:
            raise CodecError(f"need {self.k} pieces to decode, got {len(lengths)}")
        sizes = [self.fragment_size(n) for n in stripe_lens]
        expected = sum(sizes)
        for i, length in lengths.items():
            if length != expected:
                raise IntegrityError(
                    f"piece {i} holds {length} bytes for these stripes, expected {expected}"
                )
        return sizes

    def _stripes(
        self, views: Mapping[int, memoryview], stripe_lens: Sequence[int]
    ) -> Iterator[memoryview]:
        sizes = self._check({i: len(v) for i, v in views.items()}, stripe_lens)
        if all(i in views for i in range(self.k)):
            return self._systematic({i: [v] for i, v in views.items()}, stripe_lens, sizes)
        return self._rs_decode(views, stripe_lens, sizes)

    def _systematic(
        self,
        parts: Mapping[int, Sequence[memoryview]],
        stripe_lens: Sequence[int],
        sizes: list[int],
    ) -> Iterator[memoryview]:
        """All data pieces at hand: the code is systematic, so the stripe is just
        their payloads side by side. Skips pyeclib's bytes copies and header
        parsing; the headers go unread, which is harmless because the AEAD tag
        checks every stripe byte and the Merkle root every piece byte.

        Each data piece may come in parts: a payload is copied from the part that
        holds it (from two where it straddles them) straight into its stripe."""
        k = self.k
        data = [parts[i] for i in range(k)]
        at = [0] * k  # per data piece: which of its parts the next payload starts in
        base = [0] * k  # ... and the piece offset that part starts at
        buf = memoryview(bytearray(max(sizes, default=FRAGMENT_HEADER_SIZE) * k))
        offset = 0
        for n, size in zip(stripe_lens, sizes, strict=True):
            start = offset + FRAGMENT_HEADER_SIZE
            end = offset + size
            payload = size - FRAGMENT_HEADER_SIZE
            pos = 0
            for j in range(k):
                piece = data[j]
                part = piece[at[j]]
                lo = start - base[j]
                while lo >= len(part):  # the payload starts in a later part
                    base[j] += len(part)
                    lo -= len(part)
                    at[j] += 1
                    part = piece[at[j]]
                hi = end - base[j]
                if hi <= len(part):
                    buf[pos : pos + payload] = part[lo:hi]
                else:
                    _gather(piece, at[j], lo, hi, buf[pos : pos + payload])
                pos += payload
            yield buf[:n]
            offset = end

    def _rs_decode(
        self, views: Mapping[int, memoryview], stripe_lens: Sequence[int], sizes: list[int]
    ) -> Iterator[memoryview]:
        # The lowest piece numbers hold the most data fragments: least RS work.
        use = sorted(views)[: self.k]
        if self._rs is not None:
            return self._direct_decode(self._rs, use, views, stripe_lens, sizes)
        return self._pyeclib_decode(use, views, stripe_lens, sizes)

    def _direct_decode(
        self,
        rs: isal.CauchyRS,
        use: list[int],
        views: Mapping[int, memoryview],
        stripe_lens: Sequence[int],
        sizes: list[int],
    ) -> Iterator[memoryview]:
        """Present data payloads go straight to their place in the stripe, parity ones
        to a spare buffer, and ISA-L writes the missing data payloads in between.

        Each fragment's header must be the one pyeclib writes for its piece number
        and stripe length: a fragment of another piece or stripe is refused before
        it is decoded into garbage (which the AEAD tag would refuse later anyway)."""
        if not sizes:
            return
        k = self.k
        missing = tuple(j for j in range(k) if j not in views)
        tables = rs.decode_tables(tuple(use), missing)
        widest = max(sizes) - FRAGMENT_HEADER_SIZE
        stripe = bytearray(k * widest)
        parity = [p for p in use if p >= k]
        spare = bytearray(len(parity) * widest)
        sview, pview = memoryview(stripe), memoryview(spare)
        s_addr, p_addr = isal.address(stripe), isal.address(spare)
        # where each source fragment's payload goes: (buffer, its address, slot)
        slots = {p: (sview, s_addr, p) if p < k else (pview, p_addr, parity.index(p)) for p in use}
        arrays: dict[int, isal.PointerPair] = {}
        offset = 0
        for n, size in zip(stripe_lens, sizes, strict=True):
            b = size - FRAGMENT_HEADER_SIZE
            start = offset + FRAGMENT_HEADER_SIZE
            headers = _headers_for(self._driver, k, self.m, n)
            for p in use:
                if views[p][offset:start] != headers[p]:
                    raise IntegrityError(
                        f"piece {p}'s fragment at {offset} has a header for another piece or stripe"
                    )
                into, _, slot = slots[p]
                into[slot * b : (slot + 1) * b] = views[p][start : offset + size]
            ptrs = arrays.get(b)
            if ptrs is None:
                ptrs = arrays[b] = (
                    isal.pointers([addr + slot * b for _, addr, slot in slots.values()]),
                    isal.pointers([s_addr + j * b for j in missing]),
                )
            rs.run(b, tables, len(missing), *ptrs)
            yield sview[:n]
            offset += size

    def _pyeclib_decode(
        self,
        use: list[int],
        views: Mapping[int, memoryview],
        stripe_lens: Sequence[int],
        sizes: list[int],
    ) -> Iterator[memoryview]:
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


class StripeWriter:
    """Encodes one stripe at a time into the pieces' buffers, with no copy it can avoid.

    The caller seals each stripe into :meth:`buffer` (AES-GCM writes in place), then
    :meth:`write` puts every fragment, header first, at ``offset`` of its piece. ISA-L
    reads the data payloads where the cipher left them and writes parity into a
    buffer of its own, so per stripe the only copies are the fragments into the
    pieces. Runs of stripes (a batch of blocks) go faster through :meth:`stage` and
    one :meth:`complete`: data fragments copied, parity written in place by one
    ISA-L call. Holds its buffers: one writer per thread.
    """

    __slots__ = ("_driver", "_parity", "_pending", "_ptrs", "_rs", "_run", "_stripe", "k", "m")

    def __init__(
        self, k: int, m: int, max_stripe_len: int, rs: isal.CauchyRS | None, driver: ECDriver
    ) -> None:
        if max_stripe_len < 1:
            raise CodecError(f"stripe length must be positive, got {max_stripe_len}")
        self.k, self.m = k, m
        self._rs, self._driver = rs, driver
        widest = -(-max_stripe_len // k)
        self._stripe = bytearray(k * widest)
        self._parity = bytearray(m * widest)
        self._ptrs: dict[int, isal.PointerPair] = {}
        # stage()d stripes whose parity complete() has yet to compute
        self._run = (0, 0)  # piece bytes [start, end) they cover
        self._pending: list[tuple[int, int]] = []  # (offset, stripe_len) of each

    def fragment_size(self, stripe_len: int) -> int:
        return fragment_size_for(self.k, stripe_len)

    def buffer(self, stripe_len: int) -> memoryview:
        """Where the next stripe goes: exactly ``stripe_len`` bytes."""
        if not 0 < stripe_len <= len(self._stripe):
            raise CodecError(
                f"stripe of {stripe_len} bytes; this writer takes 1..{len(self._stripe)}"
            )
        return memoryview(self._stripe)[:stripe_len]

    def write(self, stripe_len: int, pieces: Sequence[memoryview | bytearray], offset: int) -> int:
        """Encode the stripe in :meth:`buffer` into every piece at ``offset``; returns
        the fragment size (how far each piece was written)."""
        k, m = self.k, self.m
        b = -(-stripe_len // k)
        size = FRAGMENT_HEADER_SIZE + b
        stripe = memoryview(self._stripe)
        if self._rs is None:
            fragments = self._driver.encode(bytes(stripe[:stripe_len]))
            for piece, fragment in zip(pieces, fragments, strict=True):
                piece[offset : offset + size] = fragment
            return size
        if k * b > stripe_len:
            stripe[stripe_len : k * b] = bytes(k * b - stripe_len)  # pyeclib pads with zeros
        ptrs = self._ptrs.get(b)
        if ptrs is None:
            stripe_at, parity_at = isal.address(self._stripe), isal.address(self._parity)
            ptrs = self._ptrs[b] = (
                isal.pointers([stripe_at + i * b for i in range(k)]),
                isal.pointers([parity_at + j * b for j in range(m)]),
            )
        self._rs.run(b, self._rs.encode_tables, m, *ptrs)
        headers = _headers_for(self._driver, k, m, stripe_len)
        parity = memoryview(self._parity)
        body = offset + FRAGMENT_HEADER_SIZE
        end = offset + size
        for i in range(k + m):
            piece = pieces[i]
            piece[offset:body] = headers[i]
            source = stripe if i < k else parity
            j = i if i < k else i - k
            piece[body:end] = source[j * b : (j + 1) * b]
        return size

    # -- a run of stripes: parity in one call -----------------------------------

    def stage(self, stripe_len: int, pieces: Sequence[memoryview | bytearray], offset: int) -> int:
        """Like :meth:`write`, but the parity fragments wait for :meth:`complete`.

        Data fragments (header and payload) go to their pieces now; parity is left
        for one ISA-L call over the whole run, which reads the data pieces where
        they lie and writes the parity pieces in place: no parity copies and one
        call per run instead of one per stripe. Stripes of a run must follow each
        other in the pieces. Without direct ISA-L this is :meth:`write`.
        """
        if self._rs is None:
            return self.write(stripe_len, pieces, offset)
        k = self.k
        b = -(-stripe_len // k)
        size = FRAGMENT_HEADER_SIZE + b
        start, end = self._run
        if self._pending and offset != end:
            raise CodecError(f"staged stripe at {offset} does not follow the run ending at {end}")
        if not self._pending:
            start = offset
        stripe = memoryview(self._stripe)
        if k * b > stripe_len:
            stripe[stripe_len : k * b] = bytes(k * b - stripe_len)  # pyeclib pads with zeros
        headers = _headers_for(self._driver, k, self.m, stripe_len)
        body = offset + FRAGMENT_HEADER_SIZE
        end = offset + size
        for i in range(k):
            piece = pieces[i]
            piece[offset:body] = headers[i]
            piece[body:end] = stripe[i * b : (i + 1) * b]
        self._pending.append((offset, stripe_len))
        self._run = (start, end)
        return size

    def complete(self, pieces: Sequence[memoryview | bytearray]) -> None:
        """Write the parity fragments of every stripe staged since the last call.

        RS works column by column, so one call over the run's bytes of the data
        pieces gives every stripe's parity payload at its place in the parity
        pieces; what it writes over the header columns (the code of the data
        headers) is then replaced by the parity fragments' real headers.
        """
        if not self._pending:
            return
        assert self._rs is not None  # stage() stages nothing without it
        k, m = self.k, self.m
        start, end = self._run
        pending, self._pending = self._pending, []
        # the ctypes views keep the pieces exported (so not resizable) during the call
        frames = [
            (ctypes.c_char * (end - start)).from_buffer(_byte_view(p)[start:end]) for p in pieces
        ]
        addresses = [ctypes.addressof(f) for f in frames]
        sources, targets = isal.pointers(addresses[:k]), isal.pointers(addresses[k : k + m])
        self._rs.run(end - start, self._rs.encode_tables, m, sources, targets)
        del frames
        for offset, stripe_len in pending:
            headers = _headers_for(self._driver, k, m, stripe_len)
            body = offset + FRAGMENT_HEADER_SIZE
            for i in range(k, k + m):
                pieces[i][offset:body] = headers[i]
