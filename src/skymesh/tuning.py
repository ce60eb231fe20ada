"""Process-wide settings the data path needs from the C allocator and the GC.

The data path allocates a few hundred KiB to a few MiB per batch (fragments of
16 stripes per piece, decoded windows) and frees them a moment later. glibc
serves blocks of that size from fresh ``mmap`` pages, or, once its dynamic
threshold has risen, from the heap top, which it trims back to the kernel as soon
as more than twice that threshold is free. Either way every batch pays for page
faults and zeroing of memory it just gave back, which nearly halves the codec
pipeline's throughput (``bench/bench_codec.py``, fresh against reused buffers).
Fixed thresholds keep blocks up to ``MMAP_THRESHOLD`` on the heap and up to
``TRIM_THRESHOLD`` of free heap mapped; that much idle memory is the price, and it
stays far below a segment in flight.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 * 1024 * 1024  # larger blocks (whole segments) still come from mmap
TRIM_THRESHOLD = 32 * 1024 * 1024
# Every thread that allocates gets its own arena (up to 8 per core), and each keeps
# its free memory, so a server's footprint grows with its worker threads. Two arenas
# (the loop's and one for all worker threads) keep that bounded.
ARENA_MAX = 2
# Python's cyclic GC runs a young collection every 700 net allocations; a server
# makes thousands per request (aiohttp's request, headers and futures), and every
# third-generation pass walks all the modules' objects again.
GC_THRESHOLDS = (20_000, 20, 50)

_done = False


def tune_process() -> None:
    """All of this module's settings, once a role has imported what it runs."""
    tune_allocator()
    tune_gc()


def tune_gc() -> None:
    """Fewer collections, and none of them walking what was loaded at start.

    ``gc.freeze`` moves every object alive now (modules, classes, config) to a
    permanent generation the collector skips; cycles made later are still found.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_allocator() -> bool:
    """Set glibc's thresholds once per process; False where there is no glibc (musl, macOS)."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
    )
    if not ok:
        log.debug("mallopt refused the thresholds; the allocator keeps its defaults")
    _done = ok
    return ok
