"""Reed-Solomon straight through ISA-L, the library pyeclib's isa_l_rs_cauchy wraps.

pyeclib holds the GIL for a whole call, copies every stripe into its own aligned
buffer, and hands each fragment back as a fresh ``bytes``, which makes it the
gateway's biggest GIL holder in a large PUT. Called through ctypes, ISA-L reads and
writes our own buffers and the GIL is released for the call, so RS runs beside the
event loop on another core.

Same library, same matrix (``gf_gen_cauchy1_matrix``, as liberasurecode builds it),
same fragment layout (stripe cut into ``k`` payloads of ``ceil(len / k)`` bytes,
zero padded), so pieces are byte for byte what pyeclib makes: :mod:`erasure` checks
that against pyeclib on a random stripe when it first builds a coder, and falls
back to pyeclib where the library cannot be found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_U8 = ctypes.c_ubyte
_PTR = ctypes.c_void_p
#: ISA-L's expanded multiplication tables: 32 bytes per (output row, input) pair.
_TABLE_BYTES = 32
Pointers = ctypes.Array[ctypes.c_void_p]
#: (sources, targets) of one ``ec_encode_data`` call
PointerPair = tuple[Pointers, Pointers]


def _find_library() -> ctypes.CDLL | None:
    """The ISA-L pyeclib's wheel bundles (renamed by auditwheel), else a system one."""
    candidates: list[str] = []
    try:
        import pyeclib

        libs = Path(pyeclib.__file__).resolve().parent.parent / "pyeclib.libs"
        candidates += sorted(str(p) for p in libs.glob("libisal*.so*"))
    except ImportError:  # pragma: no cover - pyeclib is a dependency
        pass
    system = ctypes.util.find_library("isal")
    if system:
        candidates.append(system)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            for name in ("gf_gen_cauchy1_matrix", "gf_invert_matrix", "ec_init_tables"):
                getattr(lib, name)
            lib.ec_encode_data.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ]
            lib.ec_encode_data.restype = None
            return lib
        except (OSError, AttributeError) as e:
            log.debug("ISA-L at %s unusable: %s", path, e)
    return None


_lib: ctypes.CDLL | None = None
_lib_loaded = False
_lib_lock = threading.Lock()


def library() -> ctypes.CDLL | None:
    """ISA-L, loaded once; None where it cannot be found."""
    global _lib, _lib_loaded
    with _lib_lock:
        if not _lib_loaded:
            _lib = _find_library()
            _lib_loaded = True
    return _lib


def pointers(addresses: list[int]) -> Pointers:
    """The C array ISA-L takes as ``unsigned char **``."""
    return (_PTR * len(addresses))(*addresses)


def address(buf: bytearray) -> int:
    """Where a bytearray's bytes start (it must not be resized while this is used)."""
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


class CauchyRS:
    """One (k, m) shape: its encode tables, and decode tables made on demand.

    Read-only once built (decode tables are added under a lock), so one instance
    serves every thread; the buffers belong to the callers.
    """

    def __init__(self, lib: ctypes.CDLL, k: int, m: int) -> None:
        self._lib = lib
        self.k, self.m = k, m
        n = k + m
        self._matrix = (_U8 * (n * k))()
        lib.gf_gen_cauchy1_matrix(self._matrix, n, k)
        self.encode_tables = (_U8 * (k * m * _TABLE_BYTES))()
        lib.ec_init_tables(k, m, ctypes.byref(self._matrix, k * k), self.encode_tables)
        self._decode: dict[tuple[tuple[int, ...], tuple[int, ...]], ctypes.Array[_U8]] = {}
        self._lock = threading.Lock()

    def run(
        self,
        length: int,
        tables: ctypes.Array[_U8],
        outputs: int,
        sources: Pointers,
        targets: Pointers,
    ) -> None:
        """``outputs`` rows of ``length`` bytes from the k ``sources`` (GIL released)."""
        self._lib.ec_encode_data(length, self.k, outputs, tables, sources, targets)

    def decode_tables(self, use: tuple[int, ...], missing: tuple[int, ...]) -> ctypes.Array[_U8]:
        """Tables that rebuild the data fragments ``missing`` from the k fragments ``use``."""
        key = (use, missing)
        tables = self._decode.get(key)
        if tables is not None:
            return tables
        k = self.k
        if len(use) != k or any(j >= k for j in missing):
            raise ValueError(f"decode needs k={k} sources and data fragments to rebuild")
        chosen = (_U8 * (k * k))()
        for row, piece in enumerate(use):
            ctypes.memmove(ctypes.byref(chosen, row * k), ctypes.byref(self._matrix, piece * k), k)
        inverse = (_U8 * (k * k))()
        if self._lib.gf_invert_matrix(chosen, inverse, k) != 0:
            raise ValueError(f"fragments {use} do not determine the stripe")
        rows = (_U8 * (len(missing) * k))()
        for out, j in enumerate(missing):
            ctypes.memmove(ctypes.byref(rows, out * k), ctypes.byref(inverse, j * k), k)
        tables = (_U8 * (len(missing) * k * _TABLE_BYTES))()
        self._lib.ec_init_tables(k, len(missing), rows, tables)
        with self._lock:
            self._decode[key] = tables
        return tables
