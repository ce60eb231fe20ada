"""CRC-32 (zlib's polynomial: S3's ``CRC32`` checksum) with the CPU's carry-less multiply.

boto3 sends a CRC32 with every upload by default, so the gateway computes one over
every byte it is sent. The zlib Python links (1.2.13 on Debian 12) does it at about
3.7 GB/s on one core, a quarter of a CPU-second per GB; ISA-L's ``crc32_gzip_refl``
(PCLMULQDQ, VPCLMULQDQ) computes the same value at about 25 GB/s. ISA-L is the
library the codec already loads (:func:`skymesh.codec.isal.library`, the one in
pyeclib's wheel); it is called through ctypes, which releases the GIL for the call.
zlib stays where ISA-L is missing or disagrees with it on a probe, and for small or
read-only buffers (ctypes cannot point at those without a copy).
"""

from __future__ import annotations

import ctypes
import functools
import zlib
from collections.abc import Callable

from skymesh.codec import isal

#: below this a ctypes call costs more than zlib's loop
MIN_NATIVE = 16 * 1024

_Native = Callable[[int, int, int], int]


@functools.cache
def _native() -> _Native | None:
    """ISA-L's CRC-32, once it gave zlib's value on a probe; None where it cannot."""
    lib = isal.library()
    fn = getattr(lib, "crc32_gzip_refl", None) if lib is not None else None
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64]
    fn.restype = ctypes.c_uint32
    native: _Native = fn
    probe = bytearray(range(256)) * 300  # unaligned tail, several folding blocks
    if _through(native, memoryview(probe)[3:], 0x1234) != zlib.crc32(probe[3:], 0x1234):
        return None
    return native


def _through(native: _Native, view: memoryview, value: int) -> int | None:
    """``native`` over a writable contiguous byte buffer; None for any other."""
    if view.readonly or not view.c_contiguous:
        return None
    size = view.nbytes
    array = (ctypes.c_char * size).from_buffer(view.cast("B"))
    return native(value, ctypes.addressof(array), size)


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """``zlib.crc32(data, value)``, through ISA-L for large writable buffers."""
    if len(data) >= MIN_NATIVE:
        native = _native()
        if native is not None:
            got = _through(native, memoryview(data), value)
            if got is not None:
                return got
    return zlib.crc32(data, value)
