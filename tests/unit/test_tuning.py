"""The allocator settings every role applies at start (see skymesh.tuning)."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import pytest

from skymesh.tuning import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_allocator_applies_once_and_keeps_working() -> None:
    assert tune_allocator() is True
    assert tune_allocator() is True  # a second call is a no-op, not an error
    # the heap still hands out and takes back blocks of the data path's sizes
    buffers = [ctypes.create_string_buffer(256 * 1024) for _ in range(32)]
    for b in buffers:
        b[0] = b"x"
    del buffers
    assert bytearray(2 * 1024 * 1024)[-1] == 0


# Run in an interpreter of its own: tune_gc collects and freezes the whole heap, which at
# the end of a test session is millions of objects (10 s for its gc.collect() in a full
# run, and the session's teardown after gc.unfreeze() longer still).
_TUNE_GC_CHECK = """
import gc
import weakref

from skymesh.tuning import GC_THRESHOLDS, tune_gc

tune_gc()
assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
assert gc.get_freeze_count() > 0


class Node:
    other: object = None


a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the freeze
ref = weakref.ref(a)
del a, b
gc.collect()
assert ref() is None, "a cycle made after the freeze was not collected"
"""


def test_tune_gc_keeps_collecting_new_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _TUNE_GC_CHECK], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
