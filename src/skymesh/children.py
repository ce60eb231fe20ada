"""Child processes that do not outlive whoever started them.

``subprocess.Popen(..., preexec_fn=die_with_parent)``: the child gets SIGTERM when
the *thread* that started it ends (Linux's ``PR_SET_PDEATHSIG``), even when the
parent is killed with no chance to stop it. Start such children from a long-lived
thread (the main thread, an event loop's), never from a short-lived worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent_by(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when its parent thread ends
    (None off Linux, where there is no such thing)."""
    if sys.platform != "linux":
        return None

    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return arm


#: The usual one: SIGTERM, which every skymesh role answers with a clean stop.
die_with_parent = die_with_parent_by(signal.SIGTERM)
